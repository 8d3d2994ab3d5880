import net from 'node:net';

/**
 * Records the host of every outgoing TCP connection this process opens, to prove that a test
 * reached nothing but loopback. `stop()` restores the socket and returns the hosts seen.
 */
export function recordConnections(): { hosts: string[]; stop(): string[] } {
  const hosts: string[] = [];
  // eslint-disable-next-line @typescript-eslint/unbound-method -- put back as is, and only ever called with its socket
  const original = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    // net.connect hands over its normalised arguments as one array.
    const a0 = args[0];
    const first: unknown = Array.isArray(a0) ? a0[0] : a0;
    if (typeof first === 'object' && first !== null && 'host' in first) {
      hosts.push(String((first as { host?: unknown }).host));
    } else if (typeof args[1] === 'string') {
      hosts.push(args[1]);
    }
    return (original as (...a: unknown[]) => net.Socket).apply(this, args);
  };
  return {
    hosts,
    stop: () => {
      net.Socket.prototype.connect = original;
      return hosts;
    },
  };
}
