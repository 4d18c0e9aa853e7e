import { invalidateRegion } from '../live'
import { invalidating, pendingInvalidation } from '../store'
import { ModalDialog } from './modal-dialog'

/** Confirms an invalidation, saying what it will do; both kinds confirm (hard in red, with Cancel focused). */
export function InvalidateDialog() {
  const pending = pendingInvalidation.value

  const close = () => {
    if (!invalidating.value) pendingInvalidation.value = null
  }

  const name = pending?.region.name ?? ''
  const hard = pending?.hard ?? false
  const busy = invalidating.value
  return (
    <ModalDialog open={pending !== null} onClose={close} labelledBy="invalidate-title">
      {pending && (
        <form
          method="dialog"
          class="dialog-body"
          onSubmit={(e) => {
            e.preventDefault()
            void invalidateRegion(name, hard)
          }}
        >
          <h2 id="invalidate-title">
            {hard ? 'Hard' : 'Soft'} invalidation of region “<span class="dialog-region">{name}</span>”
          </h2>
          {hard ? (
            <p>
              Every value in region <b>{name}</b> created before now becomes a <b>miss</b>; the next callers regenerate.
              Expect a burst of creator runs (still one per key: concurrent callers wait for it).
            </p>
          ) : (
            <p>
              Every value in region <b>{name}</b> created before now becomes <b>stale</b>: it is still served while one
              caller per key regenerates it, so callers do not wait.
            </p>
          )}
          {!hard && pending.region.expirationTime === null && (
            <p class="dialog-warn">
              This region has no expiration time; soft invalidation needs one, so the exporter is expected to refuse it.
            </p>
          )}
          <div class="dialog-actions">
            <button type="button" class="btn" onClick={close} disabled={busy} autoFocus={hard}>
              Cancel
            </button>
            <button
              type="submit"
              class={`btn ${hard ? 'btn-danger-solid' : 'btn-primary'}`}
              data-testid="confirm-invalidate"
              disabled={busy}
              autoFocus={!hard}
            >
              {busy ? 'Invalidating…' : hard ? 'Invalidate (hard)' : 'Invalidate (soft)'}
            </button>
          </div>
        </form>
      )}
    </ModalDialog>
  )
}
