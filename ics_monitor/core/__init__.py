"""The vocabulary every layer shares: records, keys, anomaly codes and errors. No I/O here."""
