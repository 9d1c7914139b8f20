// The plugin's defaultConfig, derived from the deployment file so routes, fallbacks and the plugin agree.
import { routingHeader, type DeploySpec } from './spec.ts';

export interface PluginModel {
  name: string;
  route: string;
  upstreamModel?: string;
  fallback?: string[];
}

export function pluginModels(spec: DeploySpec): PluginModel[] {
  return spec.models.map((m) => {
    const entry: PluginModel = { name: m.name, route: m.route };
    if (m.upstreamModel !== undefined) entry.upstreamModel = m.upstreamModel;
    if (m.fallback.length > 0) entry.fallback = [...m.fallback];
    return entry;
  });
}

/**
 * routingHeader first (the Ingress annotations are built from the same value), then the file's plugin.config in
 * its own order, then the derived models. plugin.config cannot hold `models` (spec.ts refuses it).
 */
export function pluginConfig(spec: DeploySpec): Record<string, unknown> {
  const out: Record<string, unknown> = { routingHeader: routingHeader(spec) };
  for (const [k, v] of Object.entries(spec.plugin.config)) if (k !== 'routingHeader') out[k] = v;
  out['models'] = pluginModels(spec);
  return out;
}
