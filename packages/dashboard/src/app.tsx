import { Charts } from './components/charts'
import { Header } from './components/header'
import { HotKeys } from './components/hot-keys'
import { InvalidateDialog } from './components/invalidate-dialog'
import { InvalidateTagsDialog } from './components/invalidate-tags-dialog'
import { Instances } from './components/instances'
import { OverviewCards } from './components/overview-cards'
import { RegionsTable } from './components/regions-table'
import { Stampedes } from './components/stampedes'
import { TokenPrompt } from './components/token-prompt'

export function App() {
  return (
    <div class="app">
      <Header />
      <main class="main">
        <TokenPrompt />
        <OverviewCards />
        <Instances />
        <Charts />
        <RegionsTable />
        <HotKeys />
        <Stampedes />
      </main>
      <InvalidateDialog />
      <InvalidateTagsDialog />
    </div>
  )
}
