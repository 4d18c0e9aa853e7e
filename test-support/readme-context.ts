/**
 * What the README's guide fragments may assume, as if imported (see readme-examples.ts): type-checked, never run.
 * A fragment that declares one of these names itself uses its own.
 */
import type { CacheRegion } from '@corral/core'
import type { Redis } from 'ioredis'

export interface User {
  id: number
  name: string
}

/** the guide's running example: a region of users */
export declare const users: CacheRegion
/** an application's data source */
export declare const db: {
  users: {
    find(id: number): Promise<User>
    findMany(ids: readonly string[]): Promise<User[]>
  }
}
export declare const id: number
export declare const user: User

export type Database = typeof db
/** creators */
export declare function load(): Promise<User | null>
export declare function loadProfile(id: number): Promise<{ id: number; bio: string }>
export declare function buildFeed(id: number): Promise<string[]>
export declare const settings: { theme: 'light' | 'dark' }
export declare function loadPrice(): Promise<number>
/** an ioredis client the application configured */
export declare const myIoredisClient: Redis
