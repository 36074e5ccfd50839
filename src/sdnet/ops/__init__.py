"""Operations on a grid (torch-free at import): `status` (what is done, running, stale), `estimate`
(what a grid will cost) and `calibrate` (the measured step times the estimate uses, with torch)."""
