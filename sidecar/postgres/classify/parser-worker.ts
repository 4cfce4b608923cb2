// The sidecar's SQL classifier: cache hits answer synchronously on the main thread, misses go to
// ONE parser worker thread (one, not one per core: each holds a WASM parser and its own heap, and
// the sidecar's memory budget is small). A slow statement then stalls only the connection that
// sent it, and a parser that fails is thrown away with its thread instead of poisoning every later
// parse. Fail closed: a worker that crashes, runs out of memory or exceeds the time budget is
// terminated and replaced, and the statement it was parsing is refused as a parser failure.
import type { Worker, ResourceLimits } from 'node:worker_threads';
import { startThreadScript } from '../../thread-script';
import { cacheLimits, FrontCache, type CacheHints, type ClassifierStats } from './front-cache';
import type { ClassifyResult } from './classify';
import type { ParserReply, ParserThreadData } from './parser-protocol';

/** How long one classification may take in the worker before it is terminated (the worst 1 MiB statements take ~2 s). */
export const PARSE_TIME_BUDGET_MS = 10_000;
/** How long a new worker may take to load the parser. */
const SPAWN_BUDGET_MS = 30_000;
/**
 * The worker's heap. The parse tree of the worst 1 MiB statement (the default maxStatementBytes)
 * takes ~300 MB as JSON objects; the limit leaves room for that, not for much more. Reaching it
 * inside one long builtin (JSON.parse) can abort the process rather than end just the worker, so
 * the statement size cap, not this limit, is what keeps the parser's memory bounded.
 */
const WORKER_HEAP_MB = 1024;
/** The worker's stack: the tree walkers recurse once per nesting level, ~1 KB each; MAX_NESTING_DEPTH fits with room. */
const WORKER_STACK_MB = 4;

export interface ParserWorkerOptions {
  /** Entries per cache. Default 10000. */
  maxEntries?: number;
  /** Estimated bytes per cache (the two on this thread and the worker's). Default 4 MiB. */
  maxBytes?: number;
  /** Texts longer than this (characters) are classified but not cached. Default 16384. */
  maxTextLength?: number;
  timeBudgetMs?: number;
  resourceLimits?: ResourceLimits;
  /** Told each time a worker is thrown away, with why. */
  onReplace?(reason: string): void;
}

export interface ParserWorkerStats extends ClassifierStats {
  /** Workers thrown away so far (failures, crashes, timeouts). */
  replaced: number;
}

export interface AsyncClassifier {
  /** A cached result at once; otherwise a promise that always resolves (failures resolve as refusals). */
  classify(text: string): ClassifyResult | Promise<ClassifyResult>;
  /** Starts the worker and waits for its parser: the sidecar does not start without one. */
  start(): Promise<void>;
  /** Terminates the worker; pending classifications resolve as refusals. */
  close(): Promise<void>;
  stats(): ParserWorkerStats;
}

interface Job {
  id: number;
  text: string;
  fast: string | undefined;
  resolve(r: ClassifyResult): void;
}

interface Thread {
  worker: Worker;
  ready: boolean;
}

export function createParserWorker(options: ParserWorkerOptions = {}): AsyncClassifier {
  const limits = cacheLimits(options);
  const maxEntries = limits.maxEntries;
  const budget = options.timeBudgetMs ?? PARSE_TIME_BUDGET_MS;
  const front = new FrontCache(limits);
  const queue: Job[] = [];
  let current: Job | undefined;
  let timer: NodeJS.Timeout | undefined;
  let thread: Thread | undefined;
  let nextId = 1;
  let replaced = 0;
  /** Entries in the worker's normalized cache, counted here (the worker holds it). */
  let normalizedSize = 0;
  let closed = false;
  let startWaiter: { resolve(): void; reject(err: Error): void } | undefined;

  const refusal = (message: string): ClassifyResult => Object.freeze({ parseError: message, parserFailure: true });

  /** Throws the worker away; the job it was on is refused. The next job starts a new one. */
  const replace = (reason: string): void => {
    const t = thread;
    thread = undefined;
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (t) {
      t.worker.removeAllListeners();
      t.worker.on('error', () => undefined); // a late error of a terminated worker is no news
      void t.worker.terminate();
      replaced++;
      normalizedSize = 0; // that cache lived in the worker
      options.onReplace?.(reason);
    }
    const job = current;
    current = undefined;
    job?.resolve(refusal(reason));
    startWaiter?.reject(new Error(reason));
    startWaiter = undefined;
    dispatch();
  };

  const onReply = (t: Thread, m: ParserReply): void => {
    if (t !== thread) return;
    switch (m.type) {
      case 'ready':
        t.ready = true;
        if (timer) clearTimeout(timer); // the spawn budget
        timer = undefined;
        startWaiter?.resolve();
        startWaiter = undefined;
        return send();
      case 'failed':
        return replace(m.message);
      case 'failure':
        if (current?.id !== m.id) return;
        return replace(`the SQL parser failed on this statement and was restarted (${m.message})`);
      case 'result': {
        const job = current;
        if (job?.id !== m.id) return;
        if (timer) clearTimeout(timer);
        timer = undefined;
        current = undefined;
        job.resolve(settle(job, m.result, m.hints, m.normalizedHit));
        return dispatch();
      }
    }
  };

  const settle = (job: Job, result: ClassifyResult, hints: CacheHints, normalizedHit: boolean): ClassifyResult => {
    if (normalizedHit) {
      front.counts.normalizedHits++;
      return front.store(undefined, job.fast, result, hints);
    }
    front.counts.misses++;
    if (hints.normalized && 'statements' in result && !hints.constSensitive) normalizedSize = Math.min(maxEntries, normalizedSize + 1);
    return front.store(job.text, job.fast, result, hints);
  };

  const spawn = (): Thread => {
    const data: ParserThreadData = limits;
    const t: Thread = {
      worker: startThreadScript(__dirname, 'parser-thread', data, {
        maxOldGenerationSizeMb: WORKER_HEAP_MB,
        stackSizeMb: WORKER_STACK_MB,
        ...options.resourceLimits,
      }),
      ready: false,
    };
    t.worker.unref();
    t.worker.on('message', (m: ParserReply) => onReply(t, m));
    t.worker.on('error', (err) => {
      if (t === thread) replace(`the SQL parser worker failed and was restarted (${err.message})`);
    });
    t.worker.on('exit', (code) => {
      if (t === thread) replace(`the SQL parser worker exited (code ${code}) and was restarted`);
    });
    return t;
  };

  /** Sends the current job to a ready worker, with its time budget. */
  const send = (): void => {
    if (!current || !thread?.ready || timer) return;
    const job = current;
    thread.worker.postMessage({ id: job.id, text: job.text });
    timer = setTimeout(() => {
      if (current === job) replace(`classifying the statement took longer than ${budget} ms; the SQL parser was restarted`);
    }, budget);
    timer.unref();
  };

  const dispatch = (): void => {
    if (closed || current || queue.length === 0) return;
    current = queue.shift()!;
    if (thread) send();
    else startThread();
  };

  /** A new worker; jobs wait for its parser to load, within the spawn budget. */
  const startThread = (): void => {
    const t = spawn();
    thread = t;
    timer = setTimeout(() => {
      if (t === thread && !t.ready) replace(`the SQL parser worker did not start within ${SPAWN_BUDGET_MS} ms`);
    }, SPAWN_BUDGET_MS);
    timer.unref();
  };

  return {
    classify(text: string): ClassifyResult | Promise<ClassifyResult> {
      const found = front.lookup(text);
      if (found.hit !== undefined) return found.hit;
      if (closed) return refusal('the sidecar is shutting down');
      return new Promise<ClassifyResult>((resolve) => {
        queue.push({ id: nextId++, text, fast: found.fast, resolve });
        dispatch();
      });
    },
    start(): Promise<void> {
      if (thread?.ready) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        startWaiter = { resolve, reject };
        if (!thread) startThread();
      });
    },
    async close(): Promise<void> {
      closed = true;
      const t = thread;
      thread = undefined;
      if (timer) clearTimeout(timer);
      timer = undefined;
      for (const job of [...(current ? [current] : []), ...queue.splice(0)]) job.resolve(refusal('the sidecar is shutting down'));
      current = undefined;
      if (t) {
        t.worker.removeAllListeners();
        await t.worker.terminate();
      }
    },
    stats: () => ({ ...front.counts, exactSize: front.exactSize, normalizedSize, frontBytes: front.bytes, replaced }),
  };
}
