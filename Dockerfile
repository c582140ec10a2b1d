# One image for every Baton program: `baton broker`, `baton orchestrator`, `baton agent`, `baton pki`
# and the client commands. compose.yaml runs a whole fleet from it.
FROM node:20-bookworm-slim

# procps gives `uptime`, one of the sample commands the agents of compose.yaml allow.
RUN apt-get update \
 && apt-get install -y --no-install-recommends procps \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/baton
ENV NODE_ENV=production

# Dependencies first (a layer that changes only with the lock file). `prepare` (the build) needs the
# sources, so scripts are skipped here and the build runs below.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

COPY . .
RUN npm run build \
 && mkdir -p /pki /var/lib/baton \
 && chown node:node /pki /var/lib/baton

# The programs run as `node` (uid 1000): named volumes mounted on /pki and /var/lib/baton start
# owned by it, and the files they read (keys, configs) must be readable by it (README: Agents on
# other hosts). compose.yaml's one-shot pki service runs as root to hand out keys owned by node.
USER node
EXPOSE 8142 8143
ENTRYPOINT ["node", "/opt/baton/bin/baton.mjs"]
CMD ["--help"]
