// A stand-in for llmaz's Playground controller (the real one needs GPUs and images), for tests against
// the API server from env.ts. It writes the same status the real one does at the points a deploy tool
// looks at:
//
//   1. OpenModel named by spec.modelClaim.modelName missing -> Progressing=False, AbortProcessing,
//      "Waiting for model creation" (rechecked until it appears; switch off with requireModel: false)
//   2. after progressDelayMs -> Progressing=True, reason Pending; Service `<name>-lb` created
//   3. after readyDelayMs    -> Available=True, reason PlaygroundReady; status.replicas = spec.replicas
//
// A Playground annotated `test.llm-gateway/fail: "<message>"` instead gets Progressing=False, reason
// AbortProcessing, with that message. Each step is decided from the object's current status, so the
// controller is level-triggered like a real one and picks up where it left off after a re-list.
//
// Status goes through the status subresource (JSON merge patch of status only). No garbage collector runs
// in the test env, so the controller deletes `<name>-lb` itself when its Playground is deleted.

import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type V1Service,
} from "@kubernetes/client-node";

export const FAIL_ANNOTATION = "test.llm-gateway/fail";

export const PLAYGROUND_GROUP = "inference.llmaz.io";
export const PLAYGROUND_VERSION = "v1alpha1";
export const PLAYGROUND_PLURAL = "playgrounds";

/** Condition types and reasons as llmaz writes them. */
export const CONDITION_PROGRESSING = "Progressing";
export const CONDITION_AVAILABLE = "Available";
export const REASON_PENDING = "Pending";
export const REASON_READY = "PlaygroundReady";
export const REASON_ABORT = "AbortProcessing";
export const MESSAGE_MODEL_MISSING = "Waiting for model creation";

/** llmaz's backends listen here; the `<name>-lb` Service exposes it as port `http`. */
export const BACKEND_PORT = 8080;

export interface FakeControllerOptions {
  /** Watch one namespace; default all namespaces. */
  namespace?: string;
  /** Delay before Progressing=True (or before the annotated abort); default 100 ms. */
  progressDelayMs?: number;
  /** Delay from Progressing=True to Available=True; default 300 ms. */
  readyDelayMs?: number;
  /** Create (and delete) the `<name>-lb` Service like llmaz; default true. */
  createServices?: boolean;
  /** Abort with "Waiting for model creation" while the claimed OpenModel is missing; default true. */
  requireModel?: boolean;
  /** The server ends each watch after this many seconds and the controller re-lists; default 60. */
  watchTimeoutSeconds?: number;
  /** The controller stops by itself after this long; default 15 min. */
  maxLifetimeMs?: number;
  /** Diagnostics; default silent. */
  log?: (message: string) => void;
}

export interface FakeController {
  stop(): Promise<void>;
}

interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

interface Playground {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    deletionTimestamp?: string;
    annotations?: Record<string, string>;
  };
  spec?: { replicas?: number; modelClaim?: { modelName?: string } };
  status?: { conditions?: Condition[]; replicas?: number; selector?: string };
}

type Step =
  { kind: "abort"; message: string } | { kind: "waitModel"; model: string } | { kind: "progress" } | { kind: "ready" } | { kind: "done" };

const MODEL_RECHECK_MS = 250;
const MAX_CONSECUTIVE_FAILURES = 30;
const RETRY_MS = 200;
const LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name";
const LWS_WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index";

function findCondition(pg: Playground, type: string): Condition | undefined {
  return pg.status?.conditions?.find((c) => c.type === type);
}

/** The next thing llmaz would do for this Playground, judged from its status. */
export function nextStep(pg: Playground, modelExists: boolean | undefined): Step {
  const progressing = findCondition(pg, CONDITION_PROGRESSING);
  const available = findCondition(pg, CONDITION_AVAILABLE);
  const failMessage = pg.metadata.annotations?.[FAIL_ANNOTATION];
  if (failMessage !== undefined) {
    const aborted = progressing?.status === "False" && progressing.reason === REASON_ABORT && progressing.message === failMessage;
    return aborted ? { kind: "done" } : { kind: "abort", message: failMessage };
  }
  const model = pg.spec?.modelClaim?.modelName;
  if (model !== undefined && modelExists === false) return { kind: "waitModel", model };
  if (progressing === undefined || progressing.status === "False") return { kind: "progress" };
  if (available?.status !== "True") return { kind: "ready" };
  return { kind: "done" };
}

/** Like apimachinery's SetStatusCondition: lastTransitionTime changes only when status does. */
function setCondition(conditions: Condition[], update: Omit<Condition, "lastTransitionTime">): Condition[] {
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
  const existing = conditions.find((c) => c.type === update.type);
  const lastTransitionTime = existing !== undefined && existing.status === update.status ? existing.lastTransitionTime : now;
  const next: Condition = { ...update, lastTransitionTime };
  return existing === undefined ? [...conditions, next] : conditions.map((c) => (c.type === update.type ? next : c));
}

function describe(err: unknown): string {
  if (err instanceof ApiException) return `HTTP ${err.code}: ${String(err.body)}`;
  return err instanceof Error ? err.message : String(err);
}

function isNotFound(err: unknown): boolean {
  return err instanceof ApiException && err.code === 404;
}

function isConflict(err: unknown): boolean {
  return err instanceof ApiException && err.code === 409;
}

/**
 * Starts the fake controller against the cluster in kubeconfigPath. Resolves once the first list has
 * been handled and the watch is set up.
 */
export async function startFakeController(kubeconfigPath: string, opts: FakeControllerOptions = {}): Promise<FakeController> {
  const progressDelayMs = opts.progressDelayMs ?? 100;
  const readyDelayMs = opts.readyDelayMs ?? 300;
  const createServices = opts.createServices ?? true;
  const requireModel = opts.requireModel ?? true;
  const watchTimeoutSeconds = opts.watchTimeoutSeconds ?? 60;
  const log = opts.log ?? ((): void => undefined);

  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const watch = new Watch(kc);
  const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

  let stopped = false;
  const lifetime = new AbortController();
  const timers = new Map<string, { step: Step["kind"]; timer: NodeJS.Timeout }>();
  let currentWatch: AbortController | undefined;

  const keyOf = (pg: Playground): string => `${pg.metadata.namespace}/${pg.metadata.name}`;

  async function readPlayground(namespace: string, name: string): Promise<Playground | undefined> {
    try {
      return (await custom.getNamespacedCustomObject({
        group: PLAYGROUND_GROUP,
        version: PLAYGROUND_VERSION,
        namespace,
        plural: PLAYGROUND_PLURAL,
        name,
      })) as Playground;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async function modelExists(name: string): Promise<boolean> {
    try {
      await custom.getClusterCustomObject({ group: "llmaz.io", version: "v1alpha1", plural: "openmodels", name });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async function writeStatus(pg: Playground, status: NonNullable<Playground["status"]>): Promise<Playground> {
    return (await custom.patchNamespacedCustomObjectStatus(
      {
        group: PLAYGROUND_GROUP,
        version: PLAYGROUND_VERSION,
        namespace: pg.metadata.namespace,
        plural: PLAYGROUND_PLURAL,
        name: pg.metadata.name,
        body: { status },
      },
      mergePatch,
    )) as Playground;
  }

  async function ensureService(pg: Playground): Promise<void> {
    const body: V1Service = {
      apiVersion: "v1",
      kind: "Service",
      metadata: {
        name: `${pg.metadata.name}-lb`,
        namespace: pg.metadata.namespace,
        ownerReferences:
          pg.metadata.uid === undefined
            ? undefined
            : [
                {
                  apiVersion: `${PLAYGROUND_GROUP}/${PLAYGROUND_VERSION}`,
                  kind: "Playground",
                  name: pg.metadata.name,
                  uid: pg.metadata.uid,
                },
              ],
      },
      spec: {
        type: "ClusterIP",
        ports: [{ name: "http", protocol: "TCP", port: BACKEND_PORT, targetPort: BACKEND_PORT }],
        selector: { [LWS_NAME_LABEL]: pg.metadata.name, [LWS_WORKER_INDEX_LABEL]: "0" },
      },
    };
    try {
      await core.createNamespacedService({ namespace: pg.metadata.namespace, body });
      log(`created Service ${pg.metadata.namespace}/${pg.metadata.name}-lb`);
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
  }

  async function deleteService(namespace: string, name: string, ownerUid: string | undefined): Promise<void> {
    try {
      const svc = await core.readNamespacedService({ namespace, name: `${name}-lb` });
      if (ownerUid !== undefined && !(svc.metadata?.ownerReferences ?? []).some((o) => o.uid === ownerUid)) return;
      await core.deleteNamespacedService({ namespace, name: `${name}-lb` });
      log(`deleted Service ${namespace}/${name}-lb`);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** Carries out one step; returns the object as written, or undefined when there was nothing to do. */
  async function apply(pg: Playground, step: Step): Promise<Playground | undefined> {
    const conditions = pg.status?.conditions ?? [];
    const generation = pg.metadata.generation;
    const replicasNow = pg.status?.replicas ?? 0;
    switch (step.kind) {
      case "abort":
        return writeStatus(pg, {
          conditions: setCondition(conditions, {
            type: CONDITION_PROGRESSING,
            status: "False",
            reason: REASON_ABORT,
            message: step.message,
            observedGeneration: generation,
          }),
          replicas: replicasNow,
        });
      case "waitModel": {
        const current = findCondition(pg, CONDITION_PROGRESSING);
        if (current?.reason === REASON_ABORT && current.message === MESSAGE_MODEL_MISSING) return undefined;
        return writeStatus(pg, {
          conditions: setCondition(conditions, {
            type: CONDITION_PROGRESSING,
            status: "False",
            reason: REASON_ABORT,
            message: MESSAGE_MODEL_MISSING,
            observedGeneration: generation,
          }),
          replicas: replicasNow,
        });
      }
      case "progress":
        if (createServices) await ensureService(pg);
        return writeStatus(pg, {
          conditions: setCondition(conditions, {
            type: CONDITION_PROGRESSING,
            status: "True",
            reason: REASON_PENDING,
            message: "Waiting for inference Service ready",
            observedGeneration: generation,
          }),
          replicas: replicasNow,
        });
      case "ready":
        return writeStatus(pg, {
          conditions: setCondition(conditions, {
            type: CONDITION_AVAILABLE,
            status: "True",
            reason: REASON_READY,
            message: "Playground is ready",
            observedGeneration: generation,
          }),
          replicas: pg.spec?.replicas ?? 1,
          selector: `${LWS_NAME_LABEL}=${pg.metadata.name},${LWS_WORKER_INDEX_LABEL}=0`,
        });
      case "done":
        return undefined;
    }
  }

  function delayFor(step: Step): number {
    switch (step.kind) {
      case "abort":
      case "progress":
        return progressDelayMs;
      case "ready":
        return readyDelayMs;
      case "waitModel":
        return 0;
      case "done":
        return 0;
    }
  }

  /** Decides the next step for pg and schedules it (once: a pending timer for the same step stays). */
  async function reconcile(pg: Playground): Promise<void> {
    if (stopped || pg.metadata.deletionTimestamp !== undefined) return;
    const key = keyOf(pg);
    const model = pg.spec?.modelClaim?.modelName;
    const exists =
      requireModel && model !== undefined && pg.metadata.annotations?.[FAIL_ANNOTATION] === undefined
        ? await modelExists(model)
        : undefined;
    const step = nextStep(pg, exists);
    const pending = timers.get(key);
    if (pending !== undefined) {
      if (pending.step === step.kind) return;
      clearTimeout(pending.timer);
      timers.delete(key);
    }
    if (step.kind === "done") return;
    if (step.kind === "waitModel") {
      const written = await apply(pg, step);
      if (written !== undefined) log(`${key}: ${REASON_ABORT} (${MESSAGE_MODEL_MISSING})`);
    }
    const timer = setTimeout(
      () => {
        timers.delete(key);
        void fire(pg.metadata.namespace, pg.metadata.name, step).catch((err: unknown) => log(`${key}: ${describe(err)}`));
      },
      step.kind === "waitModel" ? MODEL_RECHECK_MS : delayFor(step),
    );
    timers.set(key, { step: step.kind, timer });
  }

  /** A timer is due: re-read the object and carry out the step if it is still the right one. */
  async function fire(namespace: string, name: string, planned: Step): Promise<void> {
    if (stopped) return;
    const fresh = await readPlayground(namespace, name);
    if (fresh === undefined) return;
    if (planned.kind === "waitModel") {
      await reconcile(fresh); // rechecks the model; moves on once it exists
      return;
    }
    const model = fresh.spec?.modelClaim?.modelName;
    const exists =
      requireModel && model !== undefined && fresh.metadata.annotations?.[FAIL_ANNOTATION] === undefined
        ? await modelExists(model)
        : undefined;
    const step = nextStep(fresh, exists);
    if (step.kind !== planned.kind) {
      await reconcile(fresh);
      return;
    }
    const written = await apply(fresh, step);
    if (written !== undefined) {
      log(`${namespace}/${name}: ${step.kind}`);
      await reconcile(written); // don't depend on the watch to see our own write
    }
  }

  function onEvent(type: string, obj: unknown): void {
    if (typeof obj !== "object" || obj === null) return;
    const pg = obj as Playground;
    if (type === "DELETED") {
      const key = keyOf(pg);
      const pending = timers.get(key);
      if (pending !== undefined) clearTimeout(pending.timer);
      timers.delete(key);
      if (createServices) {
        void deleteService(pg.metadata.namespace, pg.metadata.name, pg.metadata.uid).catch((err: unknown) =>
          log(`${key}: deleting Service: ${describe(err)}`),
        );
      }
      return;
    }
    if (type === "ADDED" || type === "MODIFIED") {
      void reconcile(pg).catch((err: unknown) => log(`${keyOf(pg)}: ${describe(err)}`));
    }
  }

  const path =
    opts.namespace === undefined
      ? `/apis/${PLAYGROUND_GROUP}/${PLAYGROUND_VERSION}/${PLAYGROUND_PLURAL}`
      : `/apis/${PLAYGROUND_GROUP}/${PLAYGROUND_VERSION}/namespaces/${opts.namespace}/${PLAYGROUND_PLURAL}`;

  async function list(): Promise<{ items: Playground[]; resourceVersion: string }> {
    const result = (
      opts.namespace === undefined
        ? await custom.listCustomObjectForAllNamespaces({ group: PLAYGROUND_GROUP, version: PLAYGROUND_VERSION, plural: PLAYGROUND_PLURAL })
        : await custom.listNamespacedCustomObject({
            group: PLAYGROUND_GROUP,
            version: PLAYGROUND_VERSION,
            namespace: opts.namespace,
            plural: PLAYGROUND_PLURAL,
          })
    ) as { items?: Playground[]; metadata?: { resourceVersion?: string } };
    return { items: result.items ?? [], resourceVersion: result.metadata?.resourceVersion ?? "" };
  }

  /** One list + watch round; resolves when the watch ends (server timeout, 410 Gone, error, stop). */
  let round = 0;
  async function listAndWatch(): Promise<void> {
    const { items, resourceVersion } = await list();
    round++;
    log(`watch round ${round} from resourceVersion ${resourceVersion}`);
    await Promise.all(items.map((pg) => reconcile(pg).catch((err: unknown) => log(`${keyOf(pg)}: ${describe(err)}`))));
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (err: unknown): void => {
        if (settled) return;
        settled = true;
        currentWatch = undefined;
        if (err !== null && err !== undefined && !stopped) reject(err instanceof Error ? err : new Error(String(err)));
        else resolve();
      };
      watch
        .watch(
          path,
          { resourceVersion, allowWatchBookmarks: true, timeoutSeconds: watchTimeoutSeconds },
          (type, obj) => {
            if (type === "ERROR") {
              // e.g. 410 Gone: the resourceVersion is too old; end this round and re-list.
              log(`watch error event: ${JSON.stringify(obj)}`);
              currentWatch?.abort();
              finish(null);
              return;
            }
            onEvent(type, obj);
          },
          finish,
        )
        .then((controller) => {
          if (settled || stopped) controller.abort();
          else currentWatch = controller;
        }, finish);
    });
  }

  // The first round runs before we return, so a caller's Playgrounds created afterwards are seen by the
  // watch; errors there (bad kubeconfig, CRD missing) are thrown to the caller.
  const first = await list();
  await Promise.all(first.items.map((pg) => reconcile(pg)));

  const loop = (async (): Promise<void> => {
    let failures = 0;
    while (!stopped) {
      try {
        await listAndWatch();
        failures = 0;
      } catch (err) {
        if (stopped) break;
        failures++;
        log(`list/watch failed (${failures}/${MAX_CONSECUTIVE_FAILURES}): ${describe(err)}`);
        if (failures >= MAX_CONSECUTIVE_FAILURES) {
          log("giving up: the API server is gone");
          break;
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, RETRY_MS);
          lifetime.signal.addEventListener(
            "abort",
            () => {
              clearTimeout(t);
              resolve();
            },
            { once: true },
          );
        });
      }
    }
  })();

  const lifetimeTimer = setTimeout(
    () => {
      log("maximum lifetime reached; stopping");
      void stop();
    },
    opts.maxLifetimeMs ?? 15 * 60_000,
  );
  lifetimeTimer.unref();

  let stopping: Promise<void> | undefined;
  function stop(): Promise<void> {
    stopping ??= (async (): Promise<void> => {
      stopped = true;
      clearTimeout(lifetimeTimer);
      lifetime.abort();
      for (const { timer } of timers.values()) clearTimeout(timer);
      timers.clear();
      currentWatch?.abort();
      await loop;
    })();
    return stopping;
  }

  return { stop };
}
