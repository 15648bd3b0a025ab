from sqlsluice.cli import main

main()
