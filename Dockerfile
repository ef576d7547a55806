# syntax=docker/dockerfile:1
# Every step here is one that README.md and .ci/run also run: npm ci, npm run build, npm ci --omit=dev.
# The same steps are exercised without Docker by test/e2e/docker-steps.test.ts.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json buf.yaml buf.gen.yaml ./
COPY proto ./proto
COPY src ./src
COPY scripts ./scripts
RUN npm run build

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    COGMENT_MODEL_REGISTRY_ARCHIVE_DIR=/data \
    COGMENT_MODEL_REGISTRY_PORT=9000 \
    MALLOC_ARENA_MAX=2
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY proto ./proto
# The single-file production bundle (scripts/bundle.ts): a start reads a few files, not hundreds of modules.
COPY --from=build /app/dist/bundle ./dist/bundle
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 9000
# The server handles SIGTERM/SIGINT itself (drain, then exit 0), so it stops cleanly as PID 1;
# run with `docker run --init` (or `init: true` in compose) to also have zombies reaped.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 CMD ["node", "dist/bundle/healthcheck.js"]
CMD ["node", "--single-threaded-gc", "--max-semi-space-size=8", "dist/bundle/main.js"]
