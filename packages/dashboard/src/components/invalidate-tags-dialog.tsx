import { useRef, useState } from 'preact/hooks'
import type { RegionJson } from '@corral/exporter/api'
import { invalidateTags } from '../live'
import { invalidating, pendingTagInvalidation } from '../store'
import { MAX_TAGS, parseTagsInput } from '../tags'
import { ModalDialog } from './modal-dialog'

/** Asks which tags to invalidate in a region, hard (the default) or soft, and confirms it. */
export function InvalidateTagsDialog() {
  const pending = pendingTagInvalidation.value
  const close = () => {
    if (!invalidating.value) pendingTagInvalidation.value = null
  }
  return (
    <ModalDialog open={pending !== null} onClose={close} labelledBy="invalidate-tags-title">
      {/* keyed: every opening starts with an empty form */}
      {pending && <TagsForm key={pending.region.name} region={pending.region} onCancel={close} />}
    </ModalDialog>
  )
}

function TagsForm({ region, onCancel }: { region: RegionJson; onCancel: () => void }) {
  const [hard, setHard] = useState(true)
  const [invalid, setInvalid] = useState<string | null>(null)
  const input = useRef<HTMLInputElement>(null)
  const busy = invalidating.value
  const name = region.name

  const onSubmit = (event: Event) => {
    event.preventDefault()
    const result = parseTagsInput(input.current?.value ?? '')
    if ('error' in result) {
      setInvalid(result.error)
      input.current?.focus()
      return
    }
    setInvalid(null)
    void invalidateTags(name, result.tags, hard)
  }

  return (
    <form method="dialog" class="dialog-body" onSubmit={onSubmit}>
      <h2 id="invalidate-tags-title">
        Invalidate tags in region “<span class="dialog-region">{name}</span>”
      </h2>
      <div class="dialog-field">
        <label for="tags-input">Tags</label>
        <input
          ref={input}
          id="tags-input"
          type="text"
          name="tags"
          class="input"
          placeholder="user:42, feeds"
          autocomplete="off"
          spellcheck={false}
          aria-describedby={invalid ? 'tags-hint tags-error' : 'tags-hint'}
          aria-invalid={invalid ? true : undefined}
          data-testid="tags-input"
          autoFocus
        />
        <span id="tags-hint" class="muted">
          One or more tags separated by commas (up to {MAX_TAGS}); spaces around them are ignored.
        </span>
        {invalid && (
          <span id="tags-error" class="field-error" role="alert" data-testid="tags-error">
            {invalid}
          </span>
        )}
      </div>
      <label class="check dialog-check">
        <input
          type="checkbox"
          name="hard"
          checked={hard}
          onChange={(e) => setHard(e.currentTarget.checked)}
          data-testid="tags-hard"
        />
        Hard invalidation (uncheck for soft)
      </label>
      {hard ? (
        <p>
          Every value in region <b>{name}</b> that carries one of these tags and was created before now becomes a{' '}
          <b>miss</b>, in every process sharing the backend; the next callers regenerate it.
        </p>
      ) : (
        <p>
          Every value in region <b>{name}</b> that carries one of these tags and was created before now becomes{' '}
          <b>stale</b>, in every process sharing the backend: it is still served while one caller per key regenerates
          it.
        </p>
      )}
      {!hard && region.expirationTime === null && (
        <p class="dialog-warn">
          This region has no expiration time; soft invalidation needs one, so the exporter is expected to refuse it.
        </p>
      )}
      <div class="dialog-actions">
        <button type="button" class="btn" onClick={onCancel} disabled={busy}>
          Cancel
        </button>
        <button
          type="submit"
          class={`btn ${hard ? 'btn-danger-solid' : 'btn-primary'}`}
          data-testid="confirm-invalidate-tags"
          disabled={busy}
        >
          {busy ? 'Invalidating…' : hard ? 'Invalidate tags (hard)' : 'Invalidate tags (soft)'}
        </button>
      </div>
    </form>
  )
}
