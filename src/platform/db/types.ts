// The database's tables. Each feature adds its own tables to this interface from its store
// (declaration merging), so the schema of a feature lives beside the code that uses it.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface Database {}
