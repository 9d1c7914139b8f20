// The replica model's parameters: Qwen2-1.5B-Instruct (the seed's qwen2-1-5b) in vLLM on one
// NVIDIA A100 80GB, vLLM's OpenAI-server defaults. Each number's source and derivation is in
// docs/replica-routing.md ("The simulated replica"); none was chosen by how a routing policy fares.
import type { ReplicaParams } from "./replica.ts";

export const REPLICA_PRESET: ReplicaParams = {
  // KV cache: 0.9 × 79.25 GiB (gpu_memory_utilization default) − 2.9 GiB of weights − ~2.4 GiB of
  // activations, CUDA graphs and runtime ≈ 66 GiB; Qwen2-1.5B holds 28 KiB of KV per token (28 layers ×
  // 2 KV heads × 128 dims × K and V × 2 bytes) → ≈ 2.47 M tokens ≈ 154,000 blocks of 16.
  numBlocks: 154_000,
  // vLLM's OpenAI-server defaults on an A100 (arg_utils.py: A100s keep the smaller defaults).
  maxNumSeqs: 256,
  maxBatchedTokens: 2048,
  // Batch-1 decode of Qwen2-1.5B-Instruct in vLLM on an A100 80GB: 175.55 tokens/s (Qwen2 speed
  // benchmark) → 5.7 ms per step.
  stepBaseUs: 5_700,
  // Qwen2.5-1.5B-Instruct, vLLM on an A100: 30,000-token prompts → 70.3 output tokens/s at 100 tokens
  // each = 21,100 prompt tokens/s (47 µs/token, ~35% of the A100's bf16 peak at that length); at the
  // bench's 1–6k-token prompts attention is a smaller share of the FLOPs: 2.9 GFLOP/token at the same
  // utilisation → 25 µs/token.
  prefillUsPerToken: 25,
  // Same benchmark, 1,000-token prompts and 2,000 output tokens: 2,194.5 output tokens/s at
  // max_num_seqs 256 → 456 µs per output token, less 12.5 µs of prefill per output token, is
  // (5.7 ms + 256 × d) / 256 → d = 420 µs per running request per step.
  decodeUsPerSeq: 420,
  speed: 1,
};
