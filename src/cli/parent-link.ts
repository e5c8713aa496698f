// A `peft train` started by a sweep (a child process with an IPC channel)
// tells its parent how far it is, and stops — saving its last checkpoint, as
// on SIGINT — when the parent goes away: a worker killed mid-job leaves no
// orphan training behind, and the job's next attempt resumes from there.

export interface ParentLink {
  /** Sends the step reached (at most twice a second, and always the last). */
  progress(step: number, total: number): void;
  close(): void;
}

/** The link to the parent process, or undefined when there is none (an ordinary command line). */
export function parentLink(onParentGone: () => void): ParentLink | undefined {
  if (typeof process.send !== 'function' || !process.connected) return undefined;
  // the channel must not keep the command alive once its work is done
  (process.channel as { unref?: () => void } | undefined)?.unref?.();
  let last = 0;
  const gone = () => onParentGone();
  process.on('disconnect', gone);
  return {
    progress(step, total) {
      const now = Date.now();
      if (!process.connected || (step < total && now - last < 500)) return;
      last = now;
      try {
        process.send!({ type: 'progress', step, total });
      } catch {
        // the parent went away between the check and the send: 'disconnect' follows
      }
    },
    close() {
      process.off('disconnect', gone);
    },
  };
}
