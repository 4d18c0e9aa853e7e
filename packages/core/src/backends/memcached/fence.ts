/** How often a fenced write reads again after a conflicting write before it gives up (and does not store). */
export const FENCED_WRITE_ATTEMPTS = 10
