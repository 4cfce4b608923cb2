// tools/list as one caller sees it (decision 3 of issue 13): tools it may not call, and tools
// whose definition changed, are dropped; everything else in the result (nextCursor above all, so
// pagination keeps working) is kept as the server sent it. An entry that is not a tool with a
// string name is dropped (fail closed).

export type ToolEntry = Record<string, unknown> & { name: string };

/** The result with only the tools keep() accepts, and the names dropped. */
export function filterToolsResult(
  result: Record<string, unknown>,
  keep: (tool: ToolEntry) => boolean,
): { result: Record<string, unknown>; hidden: string[] } {
  const tools = result.tools as unknown[];
  const kept: ToolEntry[] = [];
  const hidden: string[] = [];
  for (const t of tools) {
    if (t === null || typeof t !== 'object' || Array.isArray(t) || typeof (t as { name?: unknown }).name !== 'string') {
      hidden.push('(malformed entry)');
      continue;
    }
    const tool = t as ToolEntry;
    if (keep(tool)) kept.push(tool);
    else hidden.push(tool.name);
  }
  return { result: hidden.length === 0 ? result : { ...result, tools: kept }, hidden };
}
