// One configuration field as the parser reads it. The rows live in schema-table.ts, generated from the
// documented table schema.ts (which also carries each field's help).
export const enum Kind {
  Text, // a non-empty string
  HeaderName, // a lowercase header name
  HeaderValue, // printable ASCII up to 256 bytes (it becomes a header value)
  ModelName, // a model name, or a prefix pattern ending in '*'
  Flag, // true or false
  Integer, // an integer within [min, max]
  Choice, // one of `choices`
  TextList, // an array of non-empty strings
  NonEmptyTextList, // the same, with at least one item
  StatusList, // status codes (503, "503") and classes ("5xx")
  Group, // an object: its fields are the keys below this one
  GroupList, // an array of objects: their fields are the keys below "<key>[]"
}

export class Field {
  constructor(
    public key: string, // path: "fallback.cooldown.failures", "models[].name"
    public kind: Kind,
    public defaultJson: string, // "" = no default
    public min: f64,
    public max: f64,
    public choices: string, // Choice: "a|b"
    public required: bool,
  ) {}
}
