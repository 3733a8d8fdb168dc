// Opens NBD connections to an export the volume role made for this backup
// service: the unix socket when the volume lives on this host, NBD over TCP
// with TLS-PSK through the pool's gateway when it does not (remote backup).
import { NbdClient, type ConnectOptions } from '../../drivers/nbd/client.js';
import type { ExportResult } from '../../services/attachments.js';

export async function connectExport(exp: ExportResult, opts: ConnectOptions = {}): Promise<NbdClient> {
  if (exp.transport === 'unix' || !exp.tcp) return NbdClient.connectUnix(exp.socketPath, exp.exportName, opts);
  return NbdClient.connectTls(exp.tcp.host, exp.tcp.port, exp.exportName, { identity: exp.tcp.pskIdentity, key: Buffer.from(exp.tcp.pskKey, 'hex') }, opts);
}
