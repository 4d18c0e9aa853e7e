import { useEffect, useRef } from 'preact/hooks'
import { invalidateRegion } from '../live'
import { invalidating, pendingInvalidation } from '../store'

/** Confirms an invalidation, saying what it will do; both kinds confirm (hard in red, with Cancel focused). */
export function InvalidateDialog() {
  const pending = pendingInvalidation.value
  const dialog = useRef<HTMLDialogElement>(null)

  useEffect(() => {
    const el = dialog.current
    if (!el) return
    if (pending && !el.open) el.showModal()
    if (!pending && el.open) el.close()
  }, [pending])

  const close = () => {
    if (!invalidating.value) pendingInvalidation.value = null
  }

  const name = pending?.region.name ?? ''
  const hard = pending?.hard ?? false
  const busy = invalidating.value
  return (
    <dialog
      ref={dialog}
      class="dialog"
      aria-labelledby="invalidate-title"
      onCancel={(e) => {
        e.preventDefault()
        close()
      }}
      onClick={(e) => {
        // A click on the backdrop (the dialog element itself, outside its content) cancels.
        if (e.target === dialog.current) close()
      }}
    >
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
    </dialog>
  )
}
