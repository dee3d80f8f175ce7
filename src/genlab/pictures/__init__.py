"""Pictures: image grids and plots (``grids``), the pictures a run folder gets (``run_pictures``), and a
critic's field over 2-D points (``dfield``)."""
