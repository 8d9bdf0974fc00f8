// What the command may draw on the terminal: a spinner and colours only when a
// person is watching (stdout and stderr are terminals) and NO_COLOR is unset.

/** Spinner and colours are on. */
export const decorated = (): boolean => Boolean(process.stdout.isTTY) && Boolean(process.stderr.isTTY) && !noColor()

/** Styles in what goes to stdout (the reply): stdout is a terminal and NO_COLOR is unset. */
export const styledStdout = (): boolean => Boolean(process.stdout.isTTY) && !noColor()

// no-color.org: any non-empty value disables colour.
const noColor = (): boolean => (process.env.NO_COLOR ?? "") !== ""

const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]/g

export const stripAnsi = (text: string): string => text.replace(ANSI, "")

const paint = (open: string, close: string) => (text: string) =>
  decorated() ? `\x1b[${open}m${text}\x1b[${close}m` : text

export const red = paint("31", "39")
export const dim = paint("2", "22")
export const bold = paint("1", "22")
export const green = paint("32", "39")
export const cyan = paint("36", "39")

/** Writes to stderr, one line per call. */
export const errorLine = (text: string): void => {
  process.stderr.write(`${text}\n`)
}

export interface Spinner {
  /** Clears the spinner's line; safe to call more than once. */
  readonly stop: () => void
}

const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]

/** A spinner on stderr until `stop`; nothing at all when not decorated. */
export const spinner = (label: string): Spinner => {
  if (!decorated()) return { stop: () => {} }
  let i = 0
  const draw = () => {
    process.stderr.write(`\r${cyan(frames[i++ % frames.length]!)} ${dim(label)}\x1b[K`)
  }
  draw()
  const timer = setInterval(draw, 80)
  let stopped = false
  return {
    stop: () => {
      if (stopped) return
      stopped = true
      clearInterval(timer)
      process.stderr.write("\r\x1b[K")
    }
  }
}
