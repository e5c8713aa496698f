// The Redis URL and the first contact: a bad URL or a server that is not there
// is one line naming the address, within the time limit, never a hang.
import { describe, expect, it } from 'vitest';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { checkRedis, parseRedisUrl } from './queue-connection.js';

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

describe('parseRedisUrl', () => {
  it('reads host, port, database and credentials, and hides the password', () => {
    expect(parseRedisUrl('redis://127.0.0.1:6390')).toMatchObject({ host: '127.0.0.1', port: 6390, db: 0, tls: false, shown: 'redis://127.0.0.1:6390' });
    expect(parseRedisUrl('redis://localhost')).toMatchObject({ host: 'localhost', port: 6379, shown: 'redis://localhost:6379' });
    const t = parseRedisUrl('rediss://me:s%40cret@[::1]:7000/3');
    expect(t).toMatchObject({ host: '::1', port: 7000, db: 3, username: 'me', password: 's@cret', tls: true });
    expect(t.shown).toBe('rediss://me@[::1]:7000/3');
  });

  it.each([
    ['nonsense', /not a URL/],
    ['http://127.0.0.1:6379', /scheme 'http:'/],
    ['redis://127.0.0.1:99999', /not a URL|bad port/],
    ['redis://127.0.0.1:6379/x', /database 'x'/],
    ['redis://127.0.0.1:6379?a=1', /query/],
  ])('refuses %s in one line naming the flag', (url, why) => {
    expect(() => parseRedisUrl(url)).toThrow(why);
    expect(() => parseRedisUrl(url)).toThrow(/^--queue '.*' is not a Redis URL .*: expected redis:\/\/HOST:PORT/);
  });
});

describe('checkRedis', () => {
  it('a closed port: connection refused, at once', async () => {
    const server = createServer();
    const port = await listen(server);
    await new Promise((r) => server.close(r));
    const t0 = Date.now();
    await expect(checkRedis(parseRedisUrl(`redis://127.0.0.1:${port}`))).rejects.toThrow(`cannot reach redis at redis://127.0.0.1:${port}: connection refused`);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('a server that never answers: the time limit, not a hang', async () => {
    const sockets = new Set<import('node:net').Socket>();
    const server = createServer((s) => sockets.add(s));
    const port = await listen(server);
    try {
      const t0 = Date.now();
      await expect(checkRedis(parseRedisUrl(`redis://127.0.0.1:${port}`), 800)).rejects.toThrow(`cannot reach redis at redis://127.0.0.1:${port}: no answer within 0.8 s`);
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});
