// Server-side apply for the fake API server: a faithful-enough subset of the real merge.
// - maps merge recursively; lists of objects keyed by `uid`, `type` or `name` (ownerReferences,
//   conditions, containers, env) merge item by item; every other list is atomic (replaced);
// - each manager's fields are recorded in metadata.managedFields (FieldsV1);
// - a field this manager applied before and omits now is removed, unless another manager owns it;
// - a field another Apply manager owns with a different value is a conflict unless force=true.
// Pure: objects in, objects out.
import { isDeepStrictEqual } from 'node:util';

export type Obj = Record<string, unknown>;

export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion?: string;
  time?: string;
  fieldsType: 'FieldsV1';
  fieldsV1: Obj;
  subresource?: string;
}

type Path = string[];

/** Fields the server owns: never part of any manager's set. */
const SYSTEM_META = new Set([
  'name',
  'namespace',
  'resourceVersion',
  'uid',
  'generation',
  'creationTimestamp',
  'managedFields',
  'selfLink',
  'deletionTimestamp',
]);
const LIST_MAP_KEYS = ['uid', 'type', 'name'];

export function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function listKey(items: unknown[]): string | undefined {
  if (items.length === 0) return undefined;
  return LIST_MAP_KEYS.find((k) => items.every((i) => isObj(i) && typeof i[k] === 'string'));
}

function itemSeg(key: string, item: Obj): string {
  return `k:${JSON.stringify({ [key]: item[key] })}`;
}

/** The set of field paths an object sets: leaves, plus one marker per keyed list item. */
export function fieldPaths(obj: Obj, prefix: Path = []): Path[] {
  const out: Path[] = [];
  for (const [k, v] of Object.entries(obj)) {
    if (prefix.length === 0 && (k === 'apiVersion' || k === 'kind')) continue;
    if (prefix.length === 1 && prefix[0] === 'f:metadata' && SYSTEM_META.has(k)) continue;
    const p = [...prefix, `f:${k}`];
    const key = Array.isArray(v) ? listKey(v) : undefined;
    if (isObj(v) && Object.keys(v).length > 0) out.push(...fieldPaths(v, p));
    else if (Array.isArray(v) && key !== undefined) {
      for (const item of v as Obj[]) {
        const ip = [...p, itemSeg(key, item)];
        out.push(ip, ...fieldPaths(item, ip));
      }
    } else out.push(p);
  }
  // metadata with only system fields contributes nothing
  return out.filter((path) => !(path.length === 1 && path[0] === 'f:metadata'));
}

export function toFieldsV1(paths: Path[]): Obj {
  const root: Obj = {};
  for (const path of paths) {
    let node = root;
    for (const seg of path) {
      if (!isObj(node[seg])) node[seg] = {};
      node = node[seg] as Obj;
    }
    if (path[path.length - 1].startsWith('k:')) node['.'] = {};
  }
  return root;
}

export function fromFieldsV1(f: Obj, prefix: Path = []): Path[] {
  const out: Path[] = [];
  for (const [k, v] of Object.entries(f)) {
    if (k === '.') {
      out.push(prefix);
      continue;
    }
    const p = [...prefix, k];
    if (isObj(v) && Object.keys(v).length > 0) out.push(...fromFieldsV1(v, p));
    else out.push(p);
  }
  return out;
}

interface Located {
  parent: Obj | unknown[];
  at: string | number;
}

function locate(obj: Obj, path: Path): Located | undefined {
  let cur: unknown = obj;
  let loc: Located | undefined;
  for (const seg of path) {
    if (seg.startsWith('f:') && isObj(cur)) {
      const name = seg.slice(2);
      if (!(name in cur)) return undefined;
      loc = { parent: cur, at: name };
      cur = cur[name];
    } else if (seg.startsWith('k:') && Array.isArray(cur)) {
      const want = JSON.parse(seg.slice(2)) as Obj;
      const i = cur.findIndex((item) => isObj(item) && Object.entries(want).every(([k, v]) => item[k] === v));
      if (i < 0) return undefined;
      loc = { parent: cur, at: i };
      cur = cur[i];
    } else return undefined;
  }
  return loc;
}

function valueAt(obj: Obj, path: Path): unknown {
  const loc = locate(obj, path);
  if (!loc) return undefined;
  return Array.isArray(loc.parent) ? loc.parent[loc.at as number] : (loc.parent as Obj)[loc.at as string];
}

function deleteAt(obj: Obj, path: Path): void {
  const loc = locate(obj, path);
  if (!loc) return;
  if (Array.isArray(loc.parent)) loc.parent.splice(loc.at as number, 1);
  else delete (loc.parent as Obj)[loc.at as string];
}

/** Merges `applied` into `target` (mutating it) with the list rules above. */
export function mergeApplied(target: Obj, applied: Obj): Obj {
  for (const [k, v] of Object.entries(applied)) {
    const cur = target[k];
    if (isObj(v) && isObj(cur)) mergeApplied(cur, v);
    else if (Array.isArray(v) && Array.isArray(cur) && listKey(v) !== undefined && listKey(cur) === listKey(v)) {
      const key = listKey(v)!;
      for (const item of v as Obj[]) {
        const existing = (cur as Obj[]).find((c) => c[key] === item[key]);
        if (existing) mergeApplied(existing, item);
        else cur.push(structuredClone(item));
      }
    } else target[k] = structuredClone(v);
  }
  return target;
}

const pathKey = (p: Path): string => JSON.stringify(p);

export interface ApplyInput {
  existing: Obj | undefined;
  applied: Obj;
  manager: string;
  force: boolean;
  subresource?: string;
  now: string;
}

export type ApplyResult = { ok: true; object: Obj } | { ok: false; conflicts: string[] };

export function serverSideApply(input: ApplyInput): ApplyResult {
  const { applied, manager, subresource } = input;
  const newPaths = fieldPaths(applied);
  const entry: ManagedFieldsEntry = {
    manager,
    operation: 'Apply',
    apiVersion: applied.apiVersion as string | undefined,
    time: input.now,
    fieldsType: 'FieldsV1',
    fieldsV1: toFieldsV1(newPaths),
    ...(subresource ? { subresource } : {}),
  };
  if (!input.existing) {
    const object = structuredClone(applied);
    const meta = (isObj(object.metadata) ? object.metadata : (object.metadata = {})) as Obj;
    meta.managedFields = [entry];
    return { ok: true, object };
  }
  const object = structuredClone(input.existing);
  const meta = object.metadata as Obj;
  const entries = (Array.isArray(meta.managedFields) ? meta.managedFields : []) as ManagedFieldsEntry[];
  const isMine = (e: ManagedFieldsEntry): boolean =>
    e.manager === manager && (e.subresource ?? '') === (subresource ?? '') && e.operation === 'Apply';
  const mine = entries.find(isMine);
  const others = entries
    .filter((e) => !isMine(e))
    .map((e) => ({ e, paths: new Map(fromFieldsV1(e.fieldsV1).map((p) => [pathKey(p), p])) }));

  const conflicts: string[] = [];
  for (const p of newPaths) {
    if (p[p.length - 1].startsWith('k:')) continue;
    for (const o of others) {
      if (o.e.operation !== 'Apply' || !o.paths.has(pathKey(p))) continue;
      if (isDeepStrictEqual(valueAt(object, p), valueAt(applied, p))) continue;
      if (input.force) o.paths.delete(pathKey(p));
      else conflicts.push(`conflict with "${o.e.manager}": .${p.map((s) => s.slice(2)).join('.')}`);
    }
  }
  if (conflicts.length > 0) return { ok: false, conflicts };

  const newKeys = new Set(newPaths.map(pathKey));
  const ownedByOthers = new Set(others.flatMap((o) => [...o.paths.keys()]));
  const dropped = (mine ? fromFieldsV1(mine.fieldsV1) : []).filter((p) => !newKeys.has(pathKey(p)) && !ownedByOthers.has(pathKey(p)));
  // deepest first, so a list item's fields go before the item itself
  dropped.sort((a, b) => b.length - a.length).forEach((p) => deleteAt(object, p));
  mergeApplied(object, applied);

  const rest = others.filter((o) => o.paths.size > 0).map((o) => ({ ...o.e, fieldsV1: toFieldsV1([...o.paths.values()]) }));
  (object.metadata as Obj).managedFields = [...rest, entry];
  return { ok: true, object };
}
