// The queue's naming and its status text (the queue itself, with Redis and
// workers, is test/sweep-queue.test.ts).
import { describe, expect, it } from 'vitest';
import { formatQueueStatus, queueJobId, sweepKey, type QueueStatus } from './queue.js';

describe('queue job ids', () => {
  it('are the sweep key (name and a hash of the absolute path) and the job id: stable, apart for two folders, no colon', () => {
    const a = queueJobId('/shared/sweeps/table', { name: 'table' }, 'sam-lora-s0');
    expect(a).toMatch(/^table-[0-9a-f]{8}\/sam-lora-s0$/);
    expect(queueJobId('/shared/sweeps/table/', { name: 'table' }, 'sam-lora-s0')).toBe(a);
    expect(queueJobId('/other/table', { name: 'table' }, 'sam-lora-s0')).not.toBe(a);
    expect(sweepKey('/x/y', 'we:ird name/..')).toMatch(/^we_ird_name_\.\.-[0-9a-f]{8}$/);
  });
});

describe('formatQueueStatus', () => {
  it('counts, workers, and per sweep the done, running, failed and missing jobs', () => {
    const status: QueueStatus = {
      url: 'redis://127.0.0.1:6379',
      counts: { waiting: 3, active: 1, completed: 4, failed: 1, delayed: 0 },
      workers: ['a:1', 'b:2'],
      sweeps: [
        {
          dir: '/s/t',
          name: 't',
          total: 9,
          done: 4,
          queued: 3,
          retrying: 1,
          active: [{ jobId: 'sam-lora-s1', sweepDir: '/s/t', worker: 'b:2', step: 12, total: 40, attempt: 2 }],
          failed: [{ jobId: 'sam-adapter-s0', sweepDir: '/s/t', reason: 'job sam-adapter-s0 failed (exit code 2):\nno data', tries: 3 }],
          missing: ['sam-adalora-s0'],
        },
      ],
    };
    expect(formatQueueStatus(status)).toEqual([
      'queue peftjs-sweep at redis://127.0.0.1:6379: 3 waiting, 1 active, 4 completed, 1 failed, 0 delayed',
      'workers: a:1, b:2',
      'sweep t (/s/t): 4/9 done, 1 running, 3 queued (1 waiting to retry after a failure), 1 failed',
      '  running  sam-lora-s1  on b:2  step 12/40  (attempt 2)',
      '  failed   sam-adapter-s0  after 3 tries: job sam-adapter-s0 failed (exit code 2): no data',
      '  not in the queue: 1 unfinished job(s) (sam-adalora-s0): enqueue them again with peft sweep --queue redis://127.0.0.1:6379 --out /s/t',
    ]);
  });
});
