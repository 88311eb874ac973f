import net from 'node:net';

/** True when something accepts TCP connections on host:port within the timeout. */
export function isPortAccepting(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (result: boolean) => {
      socket.removeAllListeners();
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * A TCP port nothing listens on right now, chosen by the kernel. Another process may take it before
 * the caller binds it; tests accept that small race in exchange for running in parallel.
 */
export function findFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not determine a free port'));
      });
    });
  });
}

/** Splits `host:port`. @throws Error when the port is missing or not a number. */
export function parseHostPort(address: string): { host: string; port: number } {
  const index = address.lastIndexOf(':');
  const port = Number(address.slice(index + 1));
  if (index <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`expected host:port, got "${address}"`);
  }
  return { host: address.slice(0, index), port };
}

/** True for addresses only this machine can reach: the embedded services are started only there. */
export function isLoopbackHost(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '::1' || host === '[::1]';
}
