// Size report of the image build.sh wrote: compressed size (what a node pulls), unpacked size, and
// the files over 1 MB. Usage: node scripts/image/report.ts [.tools/image]
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const COMPRESSED_GOAL_BYTES = 60 * 1000 * 1000;
const BIG_FILE_BYTES = 1024 * 1024;

interface Descriptor { digest: string; size: number; mediaType?: string }

export interface ImageReport {
  digest: string;
  compressedBytes: number;
  unpackedBytes: number;
  fileCount: number;
  bigFiles: { path: string; bytes: number }[];
}

export function imageReport(imageDir: string): ImageReport {
  const layout = join(imageDir, 'oci');
  const blob = (d: string) => readFileSync(join(layout, 'blobs', ...d.split(':')));
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const manifestDesc = index.manifests[0];
  if (!manifestDesc) throw new Error(`${layout}: empty OCI index`);
  const manifest = JSON.parse(blob(manifestDesc.digest).toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
  const compressedBytes = manifest.config.size + manifest.layers.reduce((sum, l) => sum + l.size, 0);
  const files = readFileSync(join(imageDir, 'rootfs-files.txt'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [path = '', size = '0'] = line.split('\t');
      return { path, bytes: Number(size) };
    });
  return {
    digest: manifestDesc.digest,
    compressedBytes,
    unpackedBytes: files.reduce((sum, f) => sum + f.bytes, 0),
    fileCount: files.length,
    bigFiles: files.filter((f) => f.bytes > BIG_FILE_BYTES).sort((a, b) => b.bytes - a.bytes),
  };
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

if (import.meta.filename === resolve(process.argv[1] ?? '')) {
  const dir = resolve(process.argv[2] ?? join(import.meta.dirname, '../../.tools/image'));
  const r = imageReport(dir);
  const goal = r.compressedBytes <= COMPRESSED_GOAL_BYTES ? 'within' : 'OVER';
  const lines = [
    `digest      ${r.digest}`,
    `compressed  ${mb(r.compressedBytes)} (${r.compressedBytes} bytes; ${goal} the ${mb(COMPRESSED_GOAL_BYTES)} goal)`,
    `unpacked    ${mb(r.unpackedBytes)} in ${r.fileCount} files`,
    `files over 1 MiB:`,
    ...r.bigFiles.map((f) => `  ${mb(f.bytes).padStart(9)}  /${f.path}`),
  ];
  process.stdout.write(lines.join('\n') + '\n');
  if (goal === 'OVER') process.exitCode = 1;
}
