// A fleet of replica-mode vLLM stubs behind the fleet Envoy (tests/bench/lb/fleet-envoy.ts), as the
// end-to-end tests of replica routing use it: replica i names itself `r<i>` in x-stub-replica.
import { startStub, type StubHandle } from "../backends/vllm-stub.ts";
import type { ReplicaParams } from "../backends/replica.ts";
import { startFleetGateway, type FleetGateway, type FleetGatewayOptions } from "../bench/lb/fleet-envoy.ts";

export interface ReplicaFleet {
  stubs: StubHandle[];
  gateway: FleetGateway;
  /** The stub behind an x-stub-replica name. */
  stubOf(replica: string): StubHandle;
  stop(): Promise<void>;
}

export async function startReplicaFleet(
  model: string,
  replicas: number,
  params: ReplicaParams,
  gateway: Omit<FleetGatewayOptions, "models">,
): Promise<ReplicaFleet> {
  const stubs: StubHandle[] = [];
  for (let i = 0; i < replicas; i++) stubs.push(await startStub({ model, replica: { name: `r${i}`, params } }));
  const gw = await startFleetGateway({
    ...gateway,
    models: [{ model, replicas: stubs.map((s) => ({ host: "127.0.0.1", port: s.port })) }],
  });
  return {
    stubs,
    gateway: gw,
    stubOf(replica: string): StubHandle {
      const s = stubs[Number(replica.slice(1))];
      if (s === undefined) throw new Error(`no replica ${replica}`);
      return s;
    },
    async stop(): Promise<void> {
      await gw.stop();
      for (const s of stubs) await s.close();
    },
  };
}

/** `n` distinct words `<prefix>0 <prefix>1 …`: prompt text of a known length in the stub's tokens. */
export const words = (prefix: string, n: number): string => Array.from({ length: n }, (_, i) => `${prefix}${i}`).join(" ");
