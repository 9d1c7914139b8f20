// Numeric values of the proxy-wasm ABI 0.2.1 types (spec "Types" section).

export const enum Status {
  Ok = 0,
  NotFound = 1,
  BadArgument = 2,
  SerializationFailure = 3,
  ParseFailure = 4,
  InvalidMemoryAccess = 6,
  Empty = 7,
  CasMismatch = 8,
  InternalFailure = 10,
  Unimplemented = 12,
}

export const enum LogLevel {
  Trace = 0,
  Debug = 1,
  Info = 2,
  Warn = 3,
  Error = 4,
  Critical = 5,
}

// Envoy maps these onto FilterHeadersStatus / FilterDataStatus: for headers 1 = StopIteration,
// for bodies 1 = StopIterationAndBuffer (Envoy keeps buffering up to its buffer limit).
export const enum Action {
  Continue = 0,
  Pause = 1,
}

export const enum BufferType {
  HttpRequestBody = 0,
  HttpResponseBody = 1,
  DownstreamData = 2,
  UpstreamData = 3,
  HttpCallResponseBody = 4,
  GrpcCallMessage = 5,
  VmConfiguration = 6,
  PluginConfiguration = 7,
}

export const enum MapType {
  HttpRequestHeaders = 0,
  HttpRequestTrailers = 1,
  HttpResponseHeaders = 2,
  HttpResponseTrailers = 3,
  HttpCallResponseHeaders = 6,
  HttpCallResponseTrailers = 7,
}

export const enum StreamType {
  HttpRequest = 0,
  HttpResponse = 1,
}

export const enum MetricType {
  Counter = 0,
  Gauge = 1,
  Histogram = 2,
}
