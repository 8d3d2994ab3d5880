// Imported first by the benchmark's cold-start child: any TCP connection to a host that is not
// loopback is refused and recorded (the child reports the list). The cold-start run with a
// telemetry connection string must contact nothing off this machine, and this makes it so — and
// shows it — whatever the SDK tries.
import net from 'node:net';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost|::ffff:127\.\d+\.\d+\.\d+)$/i;

/** Hosts a connection was refused to, in order. */
export const refusedConnections: string[] = [];

type Connect = (this: net.Socket, ...args: unknown[]) => net.Socket;

/** The host of `socket.connect(...)`'s arguments: (options), (port, host?), or (path) for a local socket. */
function hostOf(args: unknown[]): string {
  const [first, second] = args;
  if (typeof first === 'object' && first !== null) {
    const options = first as { host?: unknown; path?: unknown };
    if (typeof options.path === 'string') return 'localhost';
    return typeof options.host === 'string' ? options.host : 'localhost';
  }
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    return typeof second === 'string' ? second : 'localhost';
  }
  return 'localhost';
}

const socketPrototype = net.Socket.prototype as unknown as { connect: Connect };
const original = socketPrototype.connect;
socketPrototype.connect = function guardedConnect(this: net.Socket, ...args: unknown[]): net.Socket {
  const host = hostOf(args);
  if (!LOOPBACK.test(host)) {
    refusedConnections.push(host);
    process.nextTick(() => this.destroy(new Error(`bench loopback guard: connection to ${host} refused`)));
    return this;
  }
  return original.apply(this, args);
};
