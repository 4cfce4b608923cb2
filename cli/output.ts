// `-o table|json|yaml`, the same on every command that lists something: table for people; json and
// yaml carry the same fields for programs (json is one document: an array of the listed items).
import { Option } from 'commander';
import YAML from 'yaml';
import { displaySafeDeep, displaySafeJson } from '../common/display-escape';

export const OUTPUT_FORMATS = ['table', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function outputOption(): Option {
  return new Option('-o, --output <format>', 'table for people; json or yaml for programs (the same fields)')
    .choices(OUTPUT_FORMATS)
    .default('table');
}

/**
 * json or yaml of data that may come from an agent or an upstream: hidden characters (terminal
 * escapes, bidi overrides) never reach the terminal as such. JSON writes them as \u escapes (the
 * value parses back unchanged); YAML shows them as visible escapes in the text (display only).
 */
export function renderData(value: unknown, format: 'json' | 'yaml'): string {
  if (format === 'json') return `${displaySafeJson(value, 2)}\n`;
  return YAML.stringify(displaySafeDeep(value), { lineWidth: 0 });
}
