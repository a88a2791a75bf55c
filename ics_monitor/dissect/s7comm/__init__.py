"""Siemens S7comm over ISO-on-TCP (TPKT, COTP) with S7comm-plus metadata."""
