# syntax=docker/dockerfile:1
#
# shipbot image: three stages so that the compiler, the dev tooling and npm's cache never reach the runtime.
#   docker build -t registry.example.com/shipbot:0.1.0 .
#   docker run --rm registry.example.com/shipbot:0.1.0 config validate examples/shipbot.yaml
#
# Base image: the official Node.js image, Debian 13 "trixie" slim variant, pinned to an exact Node version.
# - Debian rather than Alpine: glibc, like the Debian machines the test suite runs on, so the optional native
#   addons in the dependency tree (msgpackr-extract) load the same prebuilt binaries that CI exercised.
# - trixie rather than bookworm: Debian's current stable release, with regular security support for longer.
# - slim: no compilers or docs in the runtime layer (about 80 MB compressed).
# - An exact version tag, never `latest` or a bare major: a rebuild gives the same Node. Bump it on purpose
#   (and pin the digest, `node:24.20.0-trixie-slim@sha256:...`, in the pipeline that publishes releases).
ARG NODE_IMAGE=node:24.20.0-trixie-slim

# --- deps: every dependency, dev included, exactly as locked -------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the only install scripts in the tree are the `node` dev package (it fetches a second Node
# binary that the image already has) and msgpackr-extract (disabled in package.json allowScripts; it loads a
# prebuilt binary without its script). TypeScript 7's compiler arrives as an ordinary optional dependency.
RUN npm ci --ignore-scripts --no-audit --no-fund

# --- build: compile TypeScript to dist/ ---------------------------------------------------------------------
FROM deps AS build
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY commands ./commands
RUN npm run build

# --- prod-deps: runtime dependencies only ---------------------------------------------------------------------
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev leaves out the compiler, the test tools and the `node` package with its platform binary.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# --- runtime --------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Files stay owned by root and are not writable by the process; with readOnlyRootFilesystem in Kubernetes the
# only writable place is the /tmp volume.
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/commands ./dist/commands
COPY package.json ./
COPY examples ./examples
# The official image's unprivileged `node` user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8080
# Exec form, node as PID 1: SIGTERM reaches shipbot directly, which stops taking work and lets running jobs
# finish. Kubernetes ignores Docker's HEALTHCHECK and uses the probes in manifests/, so none is declared here.
ENTRYPOINT ["node", "dist/src/bin/shipbot.js"]
CMD ["all"]
