/**
 * Human output: every case prints Markdown tables, readable in a terminal and pasteable into RESULTS.md as is.
 * Formatting helpers live here too, so every case writes numbers the same way.
 */

export interface Table {
  title: string
  header: string[]
  rows: string[][]
  /** Lines printed under the table (how to read it, caveats). */
  notes?: string[]
}

/** "1.23M", "45.6 ms", "12%", "1.2×", "5 / 9": right-aligned. */
const NUMERIC = /^[-+]?[\d.,]+(?: \/ [\d.,]+)?\s*[a-zA-Zµ%/×]*$/
/** Cells that stand for "no figure" and do not make a numeric column textual. */
const PLACEHOLDERS = new Set(['n/a', '—', ''])

/** Renders `table` as an aligned Markdown table: numbers right-aligned, text left-aligned. */
export function renderTable(table: Table): string {
  const widths = table.header.map((cell, i) => Math.max(cell.length, ...table.rows.map((row) => (row[i] ?? '').length)))
  const numericColumn = table.header.map(
    (_, i) =>
      table.rows.some((row) => NUMERIC.test(row[i] ?? '')) &&
      table.rows.every((row) => NUMERIC.test(row[i] ?? '') || PLACEHOLDERS.has(row[i] ?? '')),
  )
  const line = (cells: string[]) =>
    `| ${cells.map((cell, i) => (numericColumn[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join(' | ')} |`
  const rule = `|${widths.map((width, i) => (numericColumn[i] ? `${'-'.repeat(width + 1)}:` : '-'.repeat(width + 2))).join('|')}|`
  const out = [`### ${table.title}`, '', line(table.header), rule, ...table.rows.map(line)]
  if (table.notes?.length) out.push('', ...table.notes)
  return out.join('\n')
}

/** 1234567 → "1.23M", 45678 → "45.7k". */
export function formatRate(opsPerSecond: number): string {
  if (!Number.isFinite(opsPerSecond)) return 'n/a'
  if (opsPerSecond >= 1e6) return `${(opsPerSecond / 1e6).toFixed(2)}M`
  if (opsPerSecond >= 1e3) return `${(opsPerSecond / 1e3).toFixed(1)}k`
  return opsPerSecond.toFixed(0)
}

/** Milliseconds with a precision that suits the magnitude. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return 'n/a'
  if (ms < 1) return `${ms.toFixed(3)} ms`
  if (ms < 100) return `${ms.toFixed(1)} ms`
  return `${ms.toFixed(0)} ms`
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return 'n/a'
  const abs = Math.abs(bytes)
  if (abs >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MB`
  if (abs >= 1024) return `${(bytes / 1024).toFixed(1)} KB`
  return `${bytes.toFixed(0)} B`
}

/** A ratio as "1.23×". */
export function formatRatio(ratio: number): string {
  return Number.isFinite(ratio) ? `${ratio >= 10 ? ratio.toFixed(1) : ratio.toFixed(2)}×` : 'n/a'
}
