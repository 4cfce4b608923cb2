#!/usr/bin/env bash
# `make image`: builds the one image (operator, sidecar, lockdown init container) with whichever
# engine is here. test/image.test.ts runs this with stand-in engines and checks the command lines.
#
#   IMAGE              name:tag to build (the Makefile passes ghcr.io/agent-warden/agent-warden:<version>)
#   IMAGE_PLATFORMS    e.g. linux/amd64,linux/arm64: a multi-arch build (docker buildx, or podman --manifest).
#                      Unset: this machine's platform only, loaded into the local engine (what `kind load
#                      docker-image` and a local cluster need).
#   IMAGE_PUSH=1       push the result (a multi-arch image cannot be loaded into a local engine; without
#                      a push docker buildx writes it to .tmp/image.oci.tar instead).
#   CONTAINER_ENGINE   docker or podman; default: docker if on PATH, else podman.
# Uses bash builtins only besides the engine, so the test can give it a PATH of stand-ins.
set -euo pipefail

root="$(cd "${BASH_SOURCE[0]%/*}/.." && pwd)"
image="${IMAGE:?IMAGE is required (make image sets it)}"
platforms="${IMAGE_PLATFORMS:-}"
push="${IMAGE_PUSH:-0}"
engine="${CONTAINER_ENGINE:-}"

if [[ -z "$engine" ]]; then
  if command -v docker >/dev/null 2>&1; then
    engine=docker
  elif command -v podman >/dev/null 2>&1; then
    engine=podman
  else
    echo "make image: no container engine: install Docker (with buildx for multi-arch) or Podman, or set CONTAINER_ENGINE" >&2
    exit 2
  fi
elif ! command -v "$engine" >/dev/null 2>&1; then
  echo "make image: CONTAINER_ENGINE=$engine is not on PATH" >&2
  exit 2
fi

# The engine must answer before anything is built: a docker CLI without a daemon otherwise fails
# halfway with a socket error.
if ! "$engine" info >/dev/null 2>&1; then
  echo "make image: $engine is installed but does not answer ($engine info failed): start its daemon (or machine), or set CONTAINER_ENGINE" >&2
  exit 2
fi

run() {
  echo "+ $*" >&2
  "$@"
}

case "$engine" in
  docker | */docker)
    if "$engine" buildx version >/dev/null 2>&1; then
      if [[ -n "$platforms" ]]; then
        if [[ "$push" == 1 ]]; then
          output=(--push)
        else
          mkdir -p "$root/.tmp"
          output=(--output "type=oci,dest=$root/.tmp/image.oci.tar")
        fi
        run "$engine" buildx build --platform "$platforms" -t "$image" "${output[@]}" "$root"
      else
        run "$engine" buildx build --load -t "$image" "$root"
        if [[ "$push" == 1 ]]; then run "$engine" push "$image"; fi
      fi
    else
      if [[ -n "$platforms" ]]; then
        echo "make image: IMAGE_PLATFORMS=$platforms needs docker buildx (docker buildx version failed); unset it to build for this machine only" >&2
        exit 2
      fi
      run "$engine" build -t "$image" "$root"
      if [[ "$push" == 1 ]]; then run "$engine" push "$image"; fi
    fi
    ;;
  podman | */podman)
    if [[ -n "$platforms" ]]; then
      run "$engine" build --platform "$platforms" --manifest "$image" "$root"
      if [[ "$push" == 1 ]]; then run "$engine" manifest push --all "$image" "docker://$image"; fi
    else
      run "$engine" build -t "$image" "$root"
      if [[ "$push" == 1 ]]; then run "$engine" push "$image"; fi
    fi
    ;;
  *)
    echo "make image: CONTAINER_ENGINE must be docker or podman (got $engine)" >&2
    exit 2
    ;;
esac
echo "make image: built $image${platforms:+ for $platforms}" >&2
