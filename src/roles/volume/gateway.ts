// NBD over TCP with TLS-PSK for attachments from other hosts. qemu-storage-daemon
// 7.2 runs one NBD server per process, and the pool's daemon serves the local
// unix socket; so a second daemon per pool, the gateway, listens on TCP with
// TLS and re-exports each remote attachment through an NBD client node that
// reads the pool daemon's unix export. Both hops are QEMU's own code; the
// client node reconnects by itself when the pool daemon restarts.
import { join } from 'node:path';
import { blockdevAdd, blockdevDel, blockExportAdd, blockExportDel, queryBlockExports, queryNamedBlockNodes } from '../../drivers/qmp/commands.js';
import { QsdDaemon } from '../../drivers/qsd/daemon.js';
import type { Logger } from '../../util/log.js';

export interface GatewayOptions {
  readonly runDir: string;
  readonly poolNbdSocket: string;
  readonly host: string;
  readonly port: number;
  readonly pskDir: string;
  readonly qsdBinary: string;
  readonly qmpTimeoutMs: number;
  readonly log: Logger;
}

const nodeFor = (exportId: string) => `g${exportId}`;

export class TlsGateway {
  private daemon: QsdDaemon | null = null;

  constructor(private readonly opts: GatewayOptions) {}

  async start(): Promise<void> {
    const { daemon, attached } = await QsdDaemon.attachOrStart({
      binary: this.opts.qsdBinary,
      pidFile: join(this.opts.runDir, 'gateway.pid'),
      qmpSocket: join(this.opts.runDir, 'gateway-qmp.sock'),
      nbdTcp: { host: this.opts.host, port: this.opts.port, pskDir: this.opts.pskDir },
      qmpTimeoutMs: this.opts.qmpTimeoutMs,
    });
    this.daemon = daemon;
    this.opts.log.info({ qsdPid: daemon.pid, attached, port: this.opts.port }, 'NBD TLS gateway up');
  }

  private get qmp() {
    if (!this.daemon) throw new Error('the NBD TLS gateway is not running');
    return this.daemon.qmp;
  }

  /** Re-exports the pool's unix export `exportId` on TCP+TLS under the same name. */
  async addExport(exportId: string, writable: boolean): Promise<void> {
    const node = nodeFor(exportId);
    const nodes = new Set((await queryNamedBlockNodes(this.qmp)).map((n) => n['node-name']));
    if (!nodes.has(node)) {
      await blockdevAdd(this.qmp, {
        driver: 'nbd',
        'node-name': node,
        server: { type: 'unix', path: this.opts.poolNbdSocket },
        export: exportId,
        'reconnect-delay': 30,
        'read-only': !writable,
      });
    }
    const exports = new Set((await queryBlockExports(this.qmp)).map((e) => e.id));
    if (!exports.has(exportId)) await blockExportAdd(this.qmp, { id: exportId, 'node-name': node, name: exportId, writable });
  }

  async removeExport(exportId: string): Promise<void> {
    const exports = new Set((await queryBlockExports(this.qmp)).map((e) => e.id));
    if (exports.has(exportId)) await blockExportDel(this.qmp, exportId, { mode: 'hard' });
    const nodes = new Set((await queryNamedBlockNodes(this.qmp)).map((n) => n['node-name']));
    if (nodes.has(nodeFor(exportId))) await blockdevDel(this.qmp, nodeFor(exportId));
  }

  async stop(opts: { keepDaemon: boolean }): Promise<void> {
    if (this.daemon && !opts.keepDaemon) await this.daemon.stop();
    else await this.daemon?.detach();
  }
}
