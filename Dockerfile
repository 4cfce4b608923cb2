# One image for the operator (`warden operator`), the injected sidecar (`warden sidecar`) and the
# lockdown init container (iptables). Build: docker build -t agent-warden:dev .
#
# Node 24 is the current LTS line. The base is pinned by tag; release builds should pin it by
# digest too (node:24-bookworm-slim@sha256:...), which no one can look up from this repository.

FROM node:24-bookworm-slim AS build
WORKDIR /src
# Dependencies first, so source edits reuse this layer. `npm ci`, as in the Makefile: exactly the
# lock file, which holds every platform's optional packages (so arm64 builds install too).
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# Exactly the directories tsconfig.json compiles: production code only (test support and the
# benches build through tsconfig.dev.json and never reach dist/; test/build.test.ts checks both).
COPY tsconfig.json ./
COPY common ./common
COPY sidecar ./sidecar
COPY operator ./operator
COPY cli ./cli
COPY tools ./tools
RUN npx tsc -p tsconfig.json \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force

FROM node:24-bookworm-slim
# iptables: the lockdown init container runs `warden` as root with NET_ADMIN to fence the agent's
# egress; everything else runs as the unprivileged user below.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1337 warden \
 && useradd --uid 1337 --gid 1337 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin warden
# The sidecar's memory settings (the same as the injected container's env, SIDECAR_RUNTIME_ENV in
# operator/inject/sidecar.ts): at most 2 glibc malloc arenas and 1 MB V8 semi-spaces. The third,
# --liftoff-only, is refused in NODE_OPTIONS: `warden sidecar` sets it itself. See the README's
# benchmark section for what each buys; the operator is not hurt by either.
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    NODE_OPTIONS=--max-semi-space-size=1
WORKDIR /app
# package.json marks the package root (common/policy/schema.ts finds crds/ from it) and carries
# the version `warden --version` prints; crds/ holds the schema the sidecar validates policies with.
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY crds ./crds
RUN ln -s /app/bin/warden /usr/local/bin/warden \
 && ln -s /app/bin/warden /usr/local/bin/kubectl-warden
USER 1337:1337
# Kubernetes probes (operator /healthz, sidecar /readyz) decide health, not Docker.
HEALTHCHECK NONE
ENTRYPOINT ["warden"]
CMD ["--help"]
