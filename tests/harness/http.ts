// A plain node:http client for what fetch won't send: a Host header, exact (invalid) bytes, chunked
// bodies written in pieces.
import { request } from "node:http";

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function rawRequest(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: Buffer; chunked?: boolean },
): Promise<RawResponse> {
  const u = new URL(url);
  const body = opts.body ?? Buffer.alloc(0);
  const headers: Record<string, string | number> = { "content-type": "application/json", ...opts.headers };
  if (opts.chunked) headers["transfer-encoding"] = "chunked";
  else headers["content-length"] = body.length;
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, method: opts.method ?? "POST", headers, agent: false },
      (res) => {
        let data = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          data += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data }));
      },
    );
    req.setTimeout(15000, () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
    if (opts.chunked) {
      for (let i = 0; i < body.length; i += 16384) req.write(body.subarray(i, i + 16384));
    } else {
      req.write(body);
    }
    req.end();
  });
}
