import { spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';

/** A free TCP port on the loopback interface (never Redis's default 6379). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    if (port !== 6379) return port;
  }
}

export interface RedisHandle {
  url: string;
  pid: number;
  flush(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts a throw-away redis-server (no persistence) on a free loopback port. */
export async function startRedis(): Promise<RedisHandle> {
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  while (!(await command(port, 'PING').then((r) => r.startsWith('+PONG'), () => false))) {
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not start on port ${port}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid!,
    flush: async () => {
      await command(port, 'FLUSHALL');
    },
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** One inline Redis command; resolves to the raw reply. */
function command(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let reply = '';
    socket.once('error', reject);
    socket.on('connect', () => socket.write(`${text}\r\n`));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.endsWith('\r\n')) {
        socket.end();
        resolve(reply);
      }
    });
  });
}
