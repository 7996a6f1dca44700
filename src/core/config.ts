import { z } from "zod";
import { imageRepositorySchema, kubeLabelName, kubeResourceName, shortName } from "./names.ts";

/**
 * The shape of shipbot.yaml. Everything the bot does is declared here; secrets never are (they come
 * from the environment). The schema lives in core because commands and policy reason about it.
 */

export const permissions = ["read", "deploy", "rollback", "scale", "cancel", "lock", "freeze"] as const;
export type Permission = (typeof permissions)[number];

/** Identities are `<platform>:<immutable id>`, e.g. `slack:U024BE7LH`, `teams:<aad object id>`, `shell:demo`. */
const principal = z
  .string()
  .regex(
    /^(slack|teams|shell):[A-Za-z0-9._@-]{1,128}$/,
    "must be <platform>:<id> with platform slack, teams or shell, e.g. slack:U024BE7LH",
  );

const replicaMin = z.int().min(0).max(1000);
const replicaMax = z.int().min(1).max(1000);

const replicaBounds = z
  .strictObject({ min: replicaMin.default(0), max: replicaMax.default(50) })
  .refine((b) => b.min <= b.max, { message: "must not be greater than max", path: ["min"] });

/**
 * An environment's bounds override the service's field by field, so they carry no defaults of their
 * own: `{ min: 30 }` keeps the service's max. Whether the two fields still fit together is checked
 * once they are merged (configSchema).
 */
const environmentReplicaBounds = z.strictObject({ min: replicaMin.optional(), max: replicaMax.optional() });

const serviceEnvironment = z.strictObject({
  namespace: kubeLabelName,
  deployment: kubeResourceName.optional(),
  container: kubeResourceName.optional(),
  replicas: environmentReplicaBounds.optional(),
});

/** Where a service's code lives, so `deploy api production main` names a commit, not only a tag. */
const serviceGitHub = z.strictObject({
  repo: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9-]{0,38}\/[A-Za-z0-9._-]{1,100}$/, "must be owner/name, e.g. acme/api"),
  /** How the image tag is made from the commit: {sha7}, {sha}, {tag}, {ref} and tag characters. */
  imageTag: z
    .string()
    .regex(/^(?:[A-Za-z0-9_.-]|\{(?:sha7|sha|tag|ref)\})+$/, "tag characters and {sha7}, {sha}, {tag}, {ref}")
    .default("{sha7}"),
  /** Status contexts or check runs that must be green on the commit. */
  requiredChecks: z.array(z.string().min(1).max(200)).default([]),
  /** Record each deploy as a GitHub Deployment with statuses. */
  deployments: z.boolean().default(true),
});

/** For Argo CD and Flux users: a deploy is a commit of the new tag to a config repository. */
const serviceGitOps = z
  .strictObject({
    repo: z
      .string()
      .regex(
        /^[A-Za-z0-9][A-Za-z0-9-]{0,38}\/[A-Za-z0-9._-]{1,100}$/,
        "must be owner/name, e.g. acme/deploy",
      ),
    branch: z
      .string()
      .regex(/^[A-Za-z0-9._/-]{1,200}$/)
      .default("main"),
    /** The YAML file to edit; `{env}` is replaced by the environment. */
    path: z
      .string()
      .regex(
        /^(?!\/)(?!.*\.\.)[A-Za-z0-9._/{}-]+\.ya?ml$/,
        "a .yaml path in the repository; {env} is replaced",
      ),
    format: z.enum(["kustomize-images", "yaml-path"]),
    /** For yaml-path: the dotted path of the tag, e.g. image.tag. */
    yamlPath: z
      .string()
      .regex(/^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/)
      .optional(),
    /** The kustomize image name; default: the service's image. */
    imageName: imageRepositorySchema.optional(),
    mode: z.enum(["commit", "pull-request"]).default("commit"),
    autoMerge: z.boolean().default(false),
    replicasPath: z
      .string()
      .regex(/^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/)
      .optional(),
  })
  .refine((g) => g.format !== "yaml-path" || g.yamlPath !== undefined, {
    message: "format yaml-path needs yamlPath",
    path: ["yamlPath"],
  });

const service = z.strictObject({
  github: serviceGitHub.optional(),
  /** Deploy by committing to a config repository instead of patching the cluster. */
  gitops: serviceGitOps.optional(),
  description: z.string().max(200).optional(),
  /** Image repository without a tag; `deploy api staging v2` runs `<image>:v2`. */
  image: imageRepositorySchema,
  /** Deployment name in every environment, unless an environment overrides it. Default: the service name. */
  deployment: kubeResourceName.optional(),
  /** Container whose image is set. Default: the service name. */
  container: kubeResourceName.optional(),
  replicas: replicaBounds.default({ min: 0, max: 50 }),
  environments: z.record(shortName, serviceEnvironment),
});

const weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as const;
const clockTime = z
  .string()
  .regex(/^([01][0-9]|2[0-3]):[0-5][0-9]$/, "must be a time of day as HH:MM (24 hours)");

/** A weekly window in a time zone during which only rollbacks run, e.g. Friday 16:00 to Monday 08:00. */
/** A time zone Intl knows (IANA names such as Europe/Berlin, or UTC). */
const ianaTimeZone = z.string().refine(
  (tz) => {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: tz });
      return true;
    } catch {
      return false;
    }
  },
  { message: "must be an IANA time zone such as Europe/Berlin or UTC" },
);

const freezeWindow = z
  .strictObject({
    name: z.string().min(1).max(60),
    timezone: ianaTimeZone,
    /** Days on which the window starts. */
    days: z.array(z.enum(weekdays)).min(1),
    start: clockTime,
    /** Same day if later than start, otherwise the next day. */
    end: clockTime,
    reason: z.string().max(200).optional(),
  })
  .refine((w) => w.start !== w.end, { message: "start and end must differ" });

const channelRef = z.strictObject({
  platform: z.enum(["slack", "teams", "shell"]),
  /** Slack channel id (C…), Teams conversation id, or a shell session name. */
  channel: z.string().min(1).max(256),
});

/** Who must agree before an operation runs in an environment. */
const approvalPolicy = z.strictObject({
  /** How many distinct people must approve (0: no approval). */
  required: z.int().min(0).max(10).default(0),
  /** Roles whose holders may approve. */
  from: z.array(shortName).default([]),
  /** The requester's own approval never counts. */
  forbidRequester: z.boolean().default(true),
  /** An undecided request expires (nothing runs) after this long. */
  expiresAfterMinutes: z
    .int()
    .min(1)
    .max(7 * 24 * 60)
    .default(30),
  /** Rollbacks are how incidents end: by default they skip approval. */
  rollbacks: z.enum(["skip", "require"]).default("skip"),
  /** Whether `deploy … --force` may go past red or pending required checks (it still needs this approval). */
  allowForce: z.boolean().default(false),
  /** Each counted approval comes through a different role of `from` (e.g. one `sre` and one `security`). */
  distinctGroups: z.boolean().default(false),
  /** People who wrote or co-wrote a commit of the deployed change may not approve it (services with `github`). */
  forbidCommitAuthors: z.boolean().default(false),
  /** An undecided request gets a reminder reply in its card's thread this long before it expires; 0: none. */
  remindBeforeMinutes: z
    .int()
    .min(0)
    .max(7 * 24 * 60)
    .optional(),
  /**
   * More conversations that show every approval request of the environment with its Approve and Reject
   * buttons, edited in place with the original until the operation ends (src/notify/create-approval-mirrors.ts).
   */
  mirrorTo: z
    .array(channelRef)
    .max(10)
    .refine((refs) => new Set(refs.map((c) => `${c.platform}\n${c.channel}`)).size === refs.length, {
      message: "names the same conversation twice; list each one once",
    })
    .optional(),
});

/**
 * Break-glass: a deploy during a freeze (scheduled or ad hoc), asked for with `--break-glass <reason>`.
 * It always needs this approval, and every use is posted to `auditChannel` and kept in the ledger.
 */
const breakGlassPolicy = z.strictObject({
  required: z.int().min(1).max(10).default(1),
  from: z.array(shortName).min(1, "name the roles whose holders may approve a break-glass deploy"),
  forbidRequester: z.boolean().default(true),
  expiresAfterMinutes: z
    .int()
    .min(1)
    .max(24 * 60)
    .default(30),
  auditChannel: channelRef,
});

/** A chat identity's GitHub login and commit emails, so commit authors can be told from other approvers. */
const person = z
  .strictObject({
    github: z
      .string()
      .regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/, "must be a GitHub login, e.g. octocat")
      .optional(),
    emails: z.array(z.email().max(254)).max(20).default([]),
  })
  .refine((p) => p.github !== undefined || p.emails.length > 0, {
    message: "name a github login or at least one email",
  });

const environment = z.strictObject({
  description: z.string().max(200).optional(),
  approval: approvalPolicy.optional(),
  /** Absent: no deploy runs during a freeze (`--break-glass` is refused). */
  breakGlass: breakGlassPolicy.optional(),
  /** Position in lists and help; lower first. */
  order: z.int().optional(),
  /** Recurring freeze windows: deploys and scaling wait, rollbacks run. */
  freezes: z.array(freezeWindow).default([]),
});

const role = z.strictObject({
  description: z.string().max(200).optional(),
  permissions: z.array(z.enum(permissions)).min(1),
  /** Environments this role applies to; `"*"` for all. */
  environments: z.array(z.union([shortName, z.literal("*")])).min(1),
  /** Services this role applies to; `"*"` (the default) for all. */
  services: z.array(z.union([shortName, z.literal("*")])).default(["*"]),
  users: z.array(principal).default([]),
  groups: z.array(principal).default([]),
});

const queueSettings = z.strictObject({
  /** Jobs a worker process runs at once (different targets; one per target at a time). */
  concurrency: z.int().min(1).max(1000).default(20),
  /** How long a lease on a target lives without a heartbeat before another worker may take it. */
  leaseTtlMs: z.int().min(500).max(600_000).default(30_000),
  /** How often a job waiting for a busy target looks again if nobody wakes it. */
  recheckMs: z.int().min(100).max(600_000).default(5_000),
  /** A worker that stops renewing its BullMQ lock this long is considered dead and its job is retried. */
  lockDurationMs: z.int().min(1_000).max(3_600_000).default(30_000),
  /** Longest a rollout may take before the job gives up following it. */
  rolloutTimeoutMs: z
    .int()
    .min(1_000)
    .max(24 * 3_600_000)
    .default(15 * 60_000),
});

const labelName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, "must be a Prometheus label name");

/** A label value to match exactly, or `{ regex }` matched against the whole value (as Alertmanager does). */
const labelMatcher = z.union([
  z.string().max(1024),
  z.strictObject({
    regex: z
      .string()
      .min(1)
      .max(1024)
      .refine(
        (source) => {
          try {
            new RegExp(`^(?:${source})$`);
            return true;
          } catch {
            return false;
          }
        },
        { message: "must be a valid regular expression" },
      ),
  }),
]);

/** Alert routing, correlation and incident mode (src/alerts); the same shape as src/alerts/alerts-config.ts. */
export const alertsConfigSchema = z
  .strictObject({
    /** Every route whose labels all match sends the group to its channels; none matching: `default`. */
    routes: z
      .array(
        z.strictObject({
          match: z.record(labelName, labelMatcher),
          channels: z.array(channelRef).min(1),
        }),
      )
      .default([]),
    default: z.array(channelRef).default([]),
    /** Deploys of the alert's service×environment this long before it fired are named on its card. */
    correlationWindowMinutes: z
      .int()
      .min(1)
      .max(7 * 24 * 60)
      .default(60),
    /** A firing alert at or above this severity puts its service×environment in incident mode (rollbacks only). */
    incidentSeverity: z.string().min(1).max(64).default("critical"),
    /** Severities from lowest to highest; unknown ones rank below all. */
    severities: z.array(z.string().min(1).max(64)).min(1).default(["info", "warning", "error", "critical"]),
    /** How long the Silence button silences the group in Alertmanager. */
    silenceMinutes: z
      .int()
      .min(1)
      .max(30 * 24 * 60)
      .default(60),
    /** Which alert labels name the service, the environment and the severity. */
    labels: z
      .strictObject({
        service: labelName.default("service"),
        env: labelName.default("env"),
        severity: labelName.default("severity"),
      })
      .default({ service: "service", env: "env", severity: "severity" }),
    /** Times on cards ("firing since 14:02") are shown in this IANA zone. */
    timeZone: ianaTimeZone.default("UTC"),
    /** Alerts listed one by one on a card; the rest are counted. */
    maxAlertsShown: z.int().min(1).max(20).default(5),
    /** Changes to a card within this long are rendered as one edit (a critical group's first post is immediate). */
    updateDelayMs: z.int().min(0).max(60_000).default(2_000),
  })
  .superRefine((alerts, ctx) => {
    // A threshold outside the list ranks below nothing and above nothing: incident mode would never start.
    if (!alerts.severities.includes(alerts.incidentSeverity))
      ctx.addIssue({
        code: "custom",
        path: ["incidentSeverity"],
        message: `"${alerts.incidentSeverity}" is not one of alerts.severities (${alerts.severities.join(", ")}): incident mode would never start; name one of them, or add it to the list`,
      });
  });

const doraSettings = z.strictObject({
  /**
   * A deploy failed when its target was rolled back, or a critical alert (the incident severity) of
   * its service×environment fired, this long after it and before the next deploy.
   */
  failureWindowMinutes: z
    .int()
    .min(1)
    .max(30 * 24 * 60)
    .default(24 * 60),
});

/**
 * An environment's replica bounds merged over its service's: the field that makes min exceed max, and
 * a message that names where the other bound comes from (it may be inherited, so not in sight).
 */
function checkReplicaBounds(
  service: string,
  own: { min: number; max: number },
  here: { min?: number | undefined; max?: number | undefined } | undefined,
): { field: "min" | "max"; message: string } | undefined {
  const min = here?.min ?? own.min;
  const max = here?.max ?? own.max;
  if (min <= max) return undefined;
  if (here?.min === undefined)
    return {
      field: "max",
      message: `must not be less than min (${min}, from services.${service}.replicas.min); set min here too`,
    };
  if (here.max === undefined)
    return {
      field: "min",
      message: `must not be greater than max (${max}, from services.${service}.replicas.max); set max here too`,
    };
  return { field: "min", message: `must not be greater than max (${max})` };
}

/** Minutes after a deploy in which a rollback or a critical alert counts it as failed. */
export function failureWindowMinutes(config: Pick<Config, "dora">): number {
  return config.dora?.failureWindowMinutes ?? 24 * 60;
}

export const configSchema = z
  .strictObject({
    /** Key prefix in Redis; change it to run two shipbots on one Redis. */
    redisPrefix: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,32}$/)
      .default("shipbot"),
    queue: queueSettings.default(queueSettings.parse({})),
    environments: z.record(shortName, environment),
    services: z.record(shortName, service),
    roles: z.record(shortName, role),
    /** Absent: alerts go nowhere (the webhook still answers) and no target enters incident mode. */
    alerts: alertsConfigSchema.optional(),
    /** How `dora` decides that a change failed (absent: the defaults). */
    dora: doraSettings.optional(),
    /** Chat identity (`slack:U…`) → GitHub login and emails, for `forbidCommitAuthors`. */
    people: z.record(principal, person).optional(),
  })
  .superRefine((config, ctx) => {
    const envs = new Set(Object.keys(config.environments));
    for (const [name, svc] of Object.entries(config.services)) {
      for (const [env, svcEnv] of Object.entries(svc.environments)) {
        if (!envs.has(env)) {
          ctx.addIssue({
            code: "custom",
            path: ["services", name, "environments", env],
            message: `environment "${env}" is not declared under environments (declared: ${[...envs].join(", ") || "none"})`,
          });
        }
        const clash = checkReplicaBounds(name, svc.replicas, svcEnv.replicas);
        if (clash)
          ctx.addIssue({
            code: "custom",
            path: ["services", name, "environments", env, "replicas", clash.field],
            message: clash.message,
          });
      }
    }
    for (const [name, env] of Object.entries(config.environments)) {
      env.breakGlass?.from.forEach((roleName, i) => {
        if (!Object.hasOwn(config.roles, roleName)) {
          ctx.addIssue({
            code: "custom",
            path: ["environments", name, "breakGlass", "from", i],
            message: `role "${roleName}" is not declared under roles`,
          });
        }
      });
      const policy = env.approval;
      if (!policy) continue;
      policy.from.forEach((roleName, i) => {
        if (!Object.hasOwn(config.roles, roleName)) {
          ctx.addIssue({
            code: "custom",
            path: ["environments", name, "approval", "from", i],
            message: `role "${roleName}" is not declared under roles`,
          });
        }
      });
      if (policy.required > 0 && policy.from.length === 0) {
        ctx.addIssue({
          code: "custom",
          path: ["environments", name, "approval", "from"],
          message: "name the roles whose holders may approve",
        });
      }
      if (policy.distinctGroups && policy.required > policy.from.length) {
        ctx.addIssue({
          code: "custom",
          path: ["environments", name, "approval", "distinctGroups"],
          message: `${policy.required} approvals from different roles need at least ${policy.required} roles under from`,
        });
      }
      if (
        policy.remindBeforeMinutes !== undefined &&
        policy.remindBeforeMinutes >= policy.expiresAfterMinutes
      ) {
        ctx.addIssue({
          code: "custom",
          path: ["environments", name, "approval", "remindBeforeMinutes"],
          message: `must be less than expiresAfterMinutes (${policy.expiresAfterMinutes})`,
        });
      }
    }
    for (const [name, r] of Object.entries(config.roles)) {
      r.environments.forEach((env, i) => {
        if (env !== "*" && !envs.has(env)) {
          ctx.addIssue({
            code: "custom",
            path: ["roles", name, "environments", i],
            message: `environment "${env}" is not declared under environments`,
          });
        }
      });
      r.services.forEach((svc, i) => {
        if (svc !== "*" && !Object.hasOwn(config.services, svc)) {
          ctx.addIssue({
            code: "custom",
            path: ["roles", name, "services", i],
            message: `service "${svc}" is not declared under services`,
          });
        }
      });
    }
  });

export type Config = z.infer<typeof configSchema>;
export type ServiceConfig = Config["services"][string];
export type RoleConfig = Config["roles"][string];
export type ApprovalPolicy = z.infer<typeof approvalPolicy>;
/** Parses an approval policy, filling in defaults (break-glass requests reuse the approval machinery). */
export const approvalPolicySchema = approvalPolicy;
export type BreakGlassPolicy = z.infer<typeof breakGlassPolicy>;

/** Where one service runs in one environment, with defaults filled in. */
export interface ResolvedTarget {
  service: string;
  env: string;
  namespace: string;
  deployment: string;
  container: string;
  image: string;
  replicas: { min: number; max: number };
}

export function resolveTarget(config: Config, service: string, env: string): ResolvedTarget | undefined {
  // Own entries only: a name such as `constructor` must not find an inherited member.
  const svc = Object.hasOwn(config.services, service) ? config.services[service] : undefined;
  const svcEnv = svc && Object.hasOwn(svc.environments, env) ? svc.environments[env] : undefined;
  if (!svc || !svcEnv) return undefined;
  return {
    service,
    env,
    namespace: svcEnv.namespace,
    deployment: svcEnv.deployment ?? svc.deployment ?? service,
    container: svcEnv.container ?? svc.container ?? service,
    image: svc.image,
    replicas: {
      min: svcEnv.replicas?.min ?? svc.replicas.min,
      max: svcEnv.replicas?.max ?? svc.replicas.max,
    },
  };
}
