import { useRef, useState } from 'preact/hooks'
import { submitToken } from '../live'
import { authProblem, tokenFormOpen } from '../store'
import { normalizeToken } from '../token'

/** Asks for the admin token after a 401 (or when the user wants to change it). */
export function TokenPrompt() {
  const problem = authProblem.value
  const open = problem !== null || tokenFormOpen.value
  const [remember, setRemember] = useState(true)
  const [invalid, setInvalid] = useState<string | null>(null)
  const input = useRef<HTMLInputElement>(null)
  if (!open) return null

  const onSubmit = (event: Event) => {
    event.preventDefault()
    const result = normalizeToken(input.current?.value ?? '')
    if ('error' in result) {
      setInvalid(result.error)
      return
    }
    setInvalid(null)
    if (input.current) input.current.value = ''
    submitToken(result.token, remember)
  }

  return (
    <section class="panel auth" aria-labelledby="auth-title">
      <form class="auth-form" onSubmit={onSubmit}>
        <div class="auth-text">
          <h2 id="auth-title">Admin token</h2>
          {problem === 'rejected' && (
            <p class="auth-error" data-testid="auth-error" role="alert">
              The exporter rejected the token (HTTP 401). Check the value of <code>CORRAL_ADMIN_TOKEN</code> and enter
              it again.
            </p>
          )}
          {problem === 'required' && (
            <p class="auth-error" data-testid="auth-error" role="alert">
              The exporter requires an admin token (HTTP 401). Enter the value of <code>CORRAL_ADMIN_TOKEN</code>.
            </p>
          )}
          {problem === null && (
            <p class="muted">
              Sent as <code>Authorization: Bearer …</code> on every API call.
            </p>
          )}
        </div>
        <div class="auth-fields">
          <input
            ref={input}
            type="password"
            name="token"
            class="input"
            placeholder="Admin token"
            autocomplete="off"
            spellcheck={false}
            aria-label="Admin token"
            aria-invalid={invalid ? true : undefined}
            data-testid="token-input"
            autoFocus
          />
          <button type="submit" class="btn btn-primary" data-testid="token-submit">
            Connect
          </button>
          {problem === null && (
            <button type="button" class="btn btn-ghost" onClick={() => (tokenFormOpen.value = false)}>
              Cancel
            </button>
          )}
          <label class="check" title="sessionStorage: this tab only, cleared when it closes">
            <input type="checkbox" checked={remember} onChange={(e) => setRemember(e.currentTarget.checked)} />
            Remember in this tab
          </label>
        </div>
        {invalid && <p class="auth-invalid">{invalid}</p>}
      </form>
    </section>
  )
}
