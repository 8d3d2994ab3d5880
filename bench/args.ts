// Command-line flags of `npm run bench`. Every figure is printed with the parameters that made it,
// so the defaults live here, in one place.

export interface BenchArgs {
  quick: boolean;
  latencyMs: { entra: number; keyVault: number; graph: number };
  /** Measured requests per design and concurrency in sections 1–2 (after a warm-up). */
  requests: number;
  warmup: number;
  concurrencies: number[];
  users: number;
  drain: { users: number; messages: number };
  /** Section 6: a Teams backlog for one tenant at TEAMS_MAX_RPS_PER_TENANT (the stand-in 429s beyond it). */
  teams: { messages: number; senders: number; recipients: number; perSecond: number };
  coldStartRuns: number;
  /** Section 4b: host processes per variant (app, floor function) for "spawn → first 201". */
  firstResponseRuns: number;
  memoryUsers: { small: number; large: number };
  /**
   * Which sections to run (all by default): 1-2 send-now, profile (the app's CPU at concurrency 64),
   * 3 drain (with its floor), 4 cold start (with spawn → first 201), 5 memory, 6 teams, 7 ledger
   * (the delivery ledger's own cost per operation).
   */
  only: Set<string>;
  out: string | undefined;
}

const USAGE = `npm run bench -- [--quick] [--entra-ms N] [--graph-ms N] [--vault-ms N] [--requests N]
  [--memory-users N] [--teams-messages N] [--teams-rps N] [--only send,profile,drain,cold,memory,teams,ledger] [--out FILE]
  --quick        about two minutes: 200 requests per row, 1,000 queued messages, 3 cold loads and 5 host
                 starts per variant, 5,000 users, 100 Teams messages at 20/s
  --teams-messages  Teams messages for one tenant (default 500, quick 100)
  --teams-rps    TEAMS_MAX_RPS_PER_TENANT and the Graph stand-in's Teams rate (default 5 as Graph, quick 20)
  --entra-ms     latency added by the identity stand-in (default 80)
  --graph-ms     latency added by the Graph stand-in to each notification POST (default 120)
  --vault-ms     latency added by the Key Vault stand-in (default 30)
  --requests     measured requests per design and concurrency (default 3000, quick 200)
  --memory-users distinct users for the large memory row (default 100000, quick 5000)
  --only         run only these sections
  --out          where to write the results (default bench/results.json; quick: .local/bench/results.quick.json)`;

export function parseArgs(argv: string[]): BenchArgs {
  const flags = new Map<string, string>();
  const switches = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick' || arg === '--help') switches.add(arg);
    else if (arg.startsWith('--') && argv[i + 1] !== undefined) flags.set(arg, argv[++i]!);
    else throw new Error(`unknown argument "${arg}"\n${USAGE}`);
  }
  if (switches.has('--help')) {
    console.log(USAGE);
    process.exit(0);
  }
  const known = [
    '--entra-ms',
    '--graph-ms',
    '--vault-ms',
    '--requests',
    '--memory-users',
    '--teams-messages',
    '--teams-rps',
    '--only',
    '--out',
  ];
  for (const name of flags.keys())
    if (!known.includes(name)) throw new Error(`unknown flag ${name}\n${USAGE}`);
  const num = (name: string, fallback: number): number => {
    const raw = flags.get(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 0)
      throw new Error(`${name} must be a whole number, not "${raw}"`);
    return value;
  };
  const quick = switches.has('--quick');
  if (flags.get('--teams-rps') === '0') throw new Error('--teams-rps must be at least 1');
  const only = new Set(
    (flags.get('--only') ?? 'send,profile,drain,cold,memory,teams,ledger').split(',').map((s) => s.trim()),
  );
  return {
    quick,
    latencyMs: {
      entra: num('--entra-ms', 80),
      keyVault: num('--vault-ms', 30),
      graph: num('--graph-ms', 120),
    },
    requests: num('--requests', quick ? 200 : 3000),
    warmup: quick ? 60 : 300,
    concurrencies: [16, 64],
    users: 50,
    // --quick halves the backlog: the drain is latency-bound, so its rate is the same, in half the time.
    drain: { users: 100, messages: quick ? 1000 : 2000 },
    // --quick: 100 messages at 20/s (5 s of budget) instead of 500 at Graph's 5/s (100 s).
    teams: {
      messages: num('--teams-messages', quick ? 100 : 500),
      senders: 5,
      recipients: 25,
      perSecond: num('--teams-rps', quick ? 20 : 5),
    },
    coldStartRuns: quick ? 3 : 10,
    firstResponseRuns: quick ? 5 : 10,
    memoryUsers: { small: 100, large: num('--memory-users', quick ? 5_000 : 100_000) },
    only,
    out: flags.get('--out'),
  };
}
