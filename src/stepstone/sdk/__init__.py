"""The official SDKs' wire protocol (shared/WIRE.md): sync payloads, signing, calls.

Pure and typed: nothing here touches the engine or the store.
"""
