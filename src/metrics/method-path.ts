/** "/package.Service/Method" → ["package.Service", "Method"]. */
export function splitMethodPath(path: string): [service: string, method: string] {
  const slash = path.lastIndexOf("/");
  return [path.slice(path.startsWith("/") ? 1 : 0, Math.max(slash, 0)), path.slice(slash + 1)];
}
