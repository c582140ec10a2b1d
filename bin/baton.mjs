#!/usr/bin/env node
// The `baton` command. The sources are TypeScript; tsx's loader runs them without a build step.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
