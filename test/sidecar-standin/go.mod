module pandocore.xyz/test/sidecar-standin

go 1.26.0
