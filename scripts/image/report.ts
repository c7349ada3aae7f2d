// Size report of the image index build.sh wrote, per platform: compressed size (what a node of that
// architecture pulls), unpacked size, and the files over 1 MB. Usage: node scripts/image/report.ts [.tools/image]
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const COMPRESSED_GOAL_BYTES = 60 * 1000 * 1000;
const BIG_FILE_BYTES = 1024 * 1024;

interface Descriptor { digest: string; size: number; mediaType?: string; platform?: { os: string; architecture: string } }

export interface PlatformReport {
  platform: string;
  /** The platform's manifest digest (what a node of that architecture pulls from the index). */
  digest: string;
  compressedBytes: number;
  unpackedBytes: number;
  fileCount: number;
  bigFiles: { path: string; bytes: number }[];
}

export interface ImageReport {
  /** The image index digest (what is published and pinned). */
  digest: string;
  platforms: PlatformReport[];
}

export function imageReport(imageDir: string): ImageReport {
  const layout = join(imageDir, 'oci');
  const blob = (d: string) => readFileSync(join(layout, 'blobs', ...d.split(':')));
  const layoutIndex = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const indexDesc = layoutIndex.manifests[0];
  if (!indexDesc) throw new Error(`${layout}: empty OCI layout`);
  const index = JSON.parse(blob(indexDesc.digest).toString('utf8')) as { manifests: Descriptor[] };
  const platforms = index.manifests.map((desc): PlatformReport => {
    const arch = desc.platform?.architecture ?? 'unknown';
    const manifest = JSON.parse(blob(desc.digest).toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
    const files = readFileSync(join(imageDir, `rootfs-files-${arch}.txt`), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [path = '', size = '0'] = line.split('\t');
        return { path, bytes: Number(size) };
      });
    return {
      platform: `${desc.platform?.os ?? 'unknown'}/${arch}`,
      digest: desc.digest,
      compressedBytes: manifest.config.size + manifest.layers.reduce((sum, l) => sum + l.size, 0),
      unpackedBytes: files.reduce((sum, f) => sum + f.bytes, 0),
      fileCount: files.length,
      bigFiles: files.filter((f) => f.bytes > BIG_FILE_BYTES).sort((a, b) => b.bytes - a.bytes),
    };
  });
  return { digest: indexDesc.digest, platforms };
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

if (import.meta.filename === resolve(process.argv[1] ?? '')) {
  const dir = resolve(process.argv[2] ?? join(import.meta.dirname, '../../.tools/image'));
  const r = imageReport(dir);
  const lines = [`index       ${r.digest}`];
  let over = false;
  for (const p of r.platforms) {
    const goal = p.compressedBytes <= COMPRESSED_GOAL_BYTES ? 'within' : 'OVER';
    over ||= goal === 'OVER';
    lines.push(
      `${p.platform}`,
      `  digest      ${p.digest}`,
      `  compressed  ${mb(p.compressedBytes)} (${p.compressedBytes} bytes; ${goal} the ${mb(COMPRESSED_GOAL_BYTES)} goal)`,
      `  unpacked    ${mb(p.unpackedBytes)} in ${p.fileCount} files`,
      `  files over 1 MiB:`,
      ...p.bigFiles.map((f) => `    ${mb(f.bytes).padStart(9)}  /${f.path}`),
    );
  }
  process.stdout.write(lines.join('\n') + '\n');
  if (over) process.exitCode = 1;
}
