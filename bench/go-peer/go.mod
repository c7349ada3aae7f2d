module pandocore.xyz/bench/go-peer

go 1.24

require gomodules.xyz/jsonpatch/v2 v2.5.0
