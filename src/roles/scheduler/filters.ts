// Cinder's CapabilitiesFilter: a volume type's extra specs must match what a
// pool reports. Scoped keys other than "capabilities:" belong to someone else
// (qos:, bulwark:, ...) and are ignored, as in Cinder.

export type Capabilities = Readonly<Record<string, unknown>>;

export function matchesExtraSpecs(specs: Readonly<Record<string, string>>, caps: Capabilities): boolean {
  for (const [rawKey, want] of Object.entries(specs)) {
    let key = rawKey;
    const colon = key.indexOf(':');
    if (colon >= 0) {
      if (key.slice(0, colon) !== 'capabilities') continue;
      key = key.slice(colon + 1);
    }
    if (!(key in caps)) return false;
    if (!matchesRequirement(caps[key], want)) return false;
  }
  return true;
}

/** One requirement in Cinder's extra-spec operator syntax. */
export function matchesRequirement(have: unknown, req: string): boolean {
  const words = req.trim().split(/\s+/);
  const op = words[0] ?? '';
  const text = String(have);
  const num = Number(have);
  const arg = words.slice(1).join(' ');
  switch (op) {
    case '<is>':
      return text.toLowerCase() === arg.toLowerCase();
    case '<in>':
      return text.includes(arg);
    case '<all-in>':
      return Array.isArray(have) && words.slice(1).every((w) => (have as unknown[]).map(String).includes(w));
    case '<or>':
      return req.split('<or>').map((p) => p.trim()).filter(Boolean).includes(text);
    case '=':
      return num >= Number(arg);
    case '==':
      return num === Number(arg);
    case '!=':
      return num !== Number(arg);
    case '>=':
      return num >= Number(arg);
    case '<=':
      return num <= Number(arg);
    case 's==':
      return text === arg;
    case 's!=':
      return text !== arg;
    case 's>=':
      return text >= arg;
    case 's<=':
      return text <= arg;
    case 's>':
      return text > arg;
    case 's<':
      return text < arg;
    default:
      return text === req.trim() || (typeof have === 'boolean' && String(have).toLowerCase() === req.trim().toLowerCase());
  }
}
