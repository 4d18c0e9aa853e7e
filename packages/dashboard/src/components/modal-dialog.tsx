import type { ComponentChildren } from 'preact'
import { useEffect, useRef } from 'preact/hooks'

/**
 * A modal `<dialog>`, shown while `open` (its content rendered only then). Escape and a click on the backdrop call
 * `onClose`; the browser moves focus into the dialog (to an `autoFocus` element) and back when it closes.
 */
export function ModalDialog(props: {
  open: boolean
  onClose: () => void
  labelledBy: string
  children: ComponentChildren
}) {
  const { open, onClose, labelledBy, children } = props
  const dialog = useRef<HTMLDialogElement>(null)

  useEffect(() => {
    const el = dialog.current
    if (!el) return
    if (open && !el.open) el.showModal()
    if (!open && el.open) el.close()
  }, [open])

  return (
    <dialog
      ref={dialog}
      class="dialog"
      aria-labelledby={labelledBy}
      onCancel={(e) => {
        e.preventDefault()
        onClose()
      }}
      onClick={(e) => {
        // A click on the backdrop (the dialog element itself, outside its content) cancels.
        if (e.target === dialog.current) onClose()
      }}
    >
      {open && children}
    </dialog>
  )
}
