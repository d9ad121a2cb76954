from edgedistal.cli import main

main()
