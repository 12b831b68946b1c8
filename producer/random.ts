/** The project's seeded PRNG lives in core (pure; the CDC source's seed uses it too). */
export * from '#core/random';
