{
  "targets": [
    {
      "target_name": "aead",
      "sources": ["src/aead.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "libraries": ["-lcrypto"]
    }
  ]
}
