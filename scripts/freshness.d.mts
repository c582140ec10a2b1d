export declare const SOURCE_DIRS: string[];
export declare const BUNDLE: URL;
export declare function bundleIsFresh(): boolean;
export declare function ensureBuilt(): Promise<void>;
