// Decides what an uploaded image really is from its first bytes, never from
// what the uploader says: a file declared raw that carries another format's
// header would be probed as that format by anything that forgets `-f`, and a
// qcow2 naming a backing or external data file would make QEMU open a host
// path chosen by the uploader.

export const DISK_FORMATS = ['raw', 'qcow2', 'aki', 'ari'] as const;
export type DiskFormat = (typeof DISK_FORMATS)[number];
export const CONTAINER_FORMATS = ['bare', 'aki', 'ari'] as const;

/** Bytes of header inspectImageHeader needs (qcow2 v3 header is 104 bytes; VHDX/VDI magics sit within 512). */
export const HEADER_BYTES = 4096;

const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"
const QCOW2_INCOMPAT_DATA_FILE = 1n << 2n;

/** Other formats' signatures: a "raw" upload that starts with one is refused. */
const FOREIGN_MAGICS: readonly { name: string; offset: number; bytes: Buffer }[] = [
  { name: 'vmdk', offset: 0, bytes: Buffer.from('KDMV') },
  { name: 'vhdx', offset: 0, bytes: Buffer.from('vhdxfile') },
  { name: 'qed', offset: 0, bytes: Buffer.from('QED\0') },
  { name: 'luks', offset: 0, bytes: Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]) },
  { name: 'vdi', offset: 64, bytes: Buffer.from([0x7f, 0x10, 0xda, 0xbe]) },
  { name: 'vpc', offset: 0, bytes: Buffer.from('conectix') },
];

export interface Inspection {
  /** What the header says the data is. 'raw' means no known format header. */
  readonly detected: 'qcow2' | 'raw' | string;
  /** Why the upload must be refused, or null when it matches its declaration. */
  readonly problem: string | null;
  /** qcow2 only: the header's virtual size. */
  readonly virtualSizeBytes: number | null;
}

export function detectFormat(head: Buffer): string {
  if (head.length >= 4 && head.readUInt32BE(0) === QCOW2_MAGIC) return 'qcow2';
  for (const m of FOREIGN_MAGICS) {
    if (head.length >= m.offset + m.bytes.length && head.subarray(m.offset, m.offset + m.bytes.length).equals(m.bytes)) return m.name;
  }
  return 'raw';
}

/** Checks the header of the uploaded data against the declared disk format. */
export function inspectImageHeader(head: Buffer, declared: string): Inspection {
  const detected = detectFormat(head);
  if (declared === 'aki' || declared === 'ari') {
    // Kernels and ramdisks are handed to QEMU as files (-kernel/-initrd), never as disks.
    return { detected, problem: null, virtualSizeBytes: null };
  }
  if (declared === 'raw') {
    return { detected, problem: detected === 'raw' ? null : `the data is ${detected}, not raw`, virtualSizeBytes: null };
  }
  if (declared !== 'qcow2') return { detected, problem: `disk format ${declared} is not supported`, virtualSizeBytes: null };
  if (detected !== 'qcow2') return { detected, problem: `the data is ${detected === 'raw' ? 'not qcow2' : detected}, not qcow2`, virtualSizeBytes: null };
  if (head.length < 72) return { detected, problem: 'the qcow2 header is truncated', virtualSizeBytes: null };
  const version = head.readUInt32BE(4);
  if (version !== 2 && version !== 3) return { detected, problem: `qcow2 version ${version} is not supported`, virtualSizeBytes: null };
  const virtualSizeBytes = Number(head.readBigUInt64BE(24));
  if (head.readBigUInt64BE(8) !== 0n) return { detected, problem: 'qcow2 images with a backing file are refused', virtualSizeBytes };
  if (version === 3) {
    if (head.length < 80) return { detected, problem: 'the qcow2 header is truncated', virtualSizeBytes };
    if ((head.readBigUInt64BE(72) & QCOW2_INCOMPAT_DATA_FILE) !== 0n) return { detected, problem: 'qcow2 images with an external data file are refused', virtualSizeBytes };
  }
  return { detected, problem: null, virtualSizeBytes };
}
