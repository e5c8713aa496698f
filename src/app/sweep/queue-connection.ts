// The Redis behind `peft sweep --queue` and `peft worker`: the URL the user
// gives, read strictly, and a first contact under a time limit, so that a typo
// or a server that is down is one clear line within seconds instead of
// ioredis retrying forever in silence. Nothing here (nor anything BullMQ is
// given from here) talks to any address but the one in the URL.
import type { RedisOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { PeftError } from '../../core/errors.js';
import { quoteName } from '../../core/text.js';

/** How long the first contact may take (connect, and Redis's answer to PING). */
export const CONNECT_TIMEOUT_MS = 5000;

/** Where Redis is, as read from a `redis://` URL. */
export interface RedisTarget {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls: boolean;
  /** The URL without its password, for messages. */
  shown: string;
}

/**
 * Reads `redis://[USER:PASSWORD@]HOST[:PORT][/DB]` (or `rediss://` for TLS);
 * the port defaults to 6379 and the database to 0. `flag` names the flag in the
 * error message.
 */
export function parseRedisUrl(text: string, flag = '--queue'): RedisTarget {
  const bad = (why: string) =>
    new PeftError(`${flag} ${quoteName(text)} is not a Redis URL (${why}): expected redis://HOST:PORT, e.g. redis://127.0.0.1:6379`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw bad('not a URL');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw bad(`scheme '${url.protocol.slice(0, 20)}' instead of redis:`);
  if (!url.hostname) throw bad('no host');
  if (url.search || url.hash) throw bad('a query or fragment');
  const port = url.port === '' ? 6379 : Number(url.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad('bad port');
  const path = url.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d{1,2}$/.test(path)) throw bad(`database '${path.slice(0, 20)}' is not a number`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    host,
    port,
    db: path === '' ? 0 : Number(path),
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    tls: url.protocol === 'rediss:',
    shown: `${url.protocol}//${url.username ? `${url.username}@` : ''}${shownHost}:${port}${path ? `/${path}` : ''}`,
  };
}

/**
 * ioredis options for `target`. `blocking` (a worker's connections) retries a
 * command until Redis answers again, as BullMQ requires of a worker; the
 * others give up after a few tries so that a command line never hangs.
 * (BullMQ's view of ioredis's options: BullMQ hands them to ioredis.)
 */
export function redisOptions(target: RedisTarget, blocking: boolean): RedisOptions {
  return {
    host: target.host,
    port: target.port,
    db: target.db,
    username: target.username,
    password: target.password,
    ...(target.tls ? { tls: { servername: target.host } } : {}),
    connectTimeout: CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: blocking ? null : 3,
    // reconnect after 1 s, 2 s, ... up to 10 s between tries, for as long as the process runs
    retryStrategy: (times: number) => Math.min(1000 * times, 10_000),
  };
}

/** A connection error as a few words: 'connection refused', 'no answer within 5 s', 'unknown host', Redis's own reply. */
function reason(err: unknown, timeoutMs: number): string {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'unknown host';
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return 'host unreachable';
  if (code === 'ETIMEDOUT' || code === 'TIMEOUT') return `no answer within ${timeoutMs / 1000} s`;
  if (code === 'ECONNRESET') return 'connection reset';
  const message = (err as Error)?.message ?? String(err);
  return message.replace(/\s+/g, ' ').slice(0, 200);
}

/**
 * Connects to `target` once and asks it for PING within `timeoutMs`; throws a
 * PeftError `cannot reach redis at redis://HOST:PORT: <why>` otherwise.
 */
export async function checkRedis(target: RedisTarget, timeoutMs = CONNECT_TIMEOUT_MS): Promise<void> {
  const client = new Redis({
    ...redisOptions(target, false),
    connectTimeout: timeoutMs,
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
  });
  let lastError: unknown;
  // ioredis reports a failed connection as an 'error' event too; the promise below carries it
  client.on('error', (err) => {
    lastError = err;
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })), timeoutMs);
  });
  try {
    await Promise.race([
      (async () => {
        await client.connect();
        await client.ping();
      })(),
      timeout,
    ]);
  } catch (err) {
    const cause = (err as NodeJS.ErrnoException)?.code === 'TIMEOUT' ? err : (lastError ?? err);
    // "Connection is closed." says less than the socket error that closed it
    const shown = /Connection is closed/i.test((cause as Error)?.message ?? '') && lastError ? lastError : cause;
    throw new PeftError(`cannot reach redis at ${target.shown}: ${reason(shown, timeoutMs)}`, { cause: err });
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}
